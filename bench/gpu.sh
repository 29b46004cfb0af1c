#!/bin/bash
# GPU comparison: ours on burn's wgpu backend (Vulkan) against PyTorch (CUDA) on the same GPU,
# the same step as `siamese bench` (128 random triplets = 384 images, Adam, triplet loss), the
# same full-epoch loop, inference of a 512-image batch. Prints one JSON object with both sides
# and the ratios (ours / PyTorch for images/s; PyTorch time / ours for the epoch).
#
#   cargo build --release -p siamese-cli --features siamese/wgpu   # on a machine with Rust
#   bench/gpu.sh target/release/siamese                             # on the GPU machine
#
# Needs: the MNIST files in $SIAMESE_HOME/mnist (`siamese fetch mnist`), python3 with torch.
set -euo pipefail
BIN=${1:-target/release/siamese}
HERE=$(cd "$(dirname "$0")" && pwd)
MNIST=${SIAMESE_HOME:?set SIAMESE_HOME to the asset cache}/mnist
OURS=$(mktemp); PEER=$(mktemp); trap 'rm -f "$OURS" "$PEER"' EXIT
BURN_DEVICE=wgpu "$BIN" bench --no-peer --json > "$OURS"
python3 "$HERE/torch_bench.py" --mnist "$MNIST" | sed -n 's/^BENCH_JSON //p' > "$PEER"
python3 - "$OURS" "$PEER" <<'PY'
import json, sys
ours = json.load(open(sys.argv[1]))
peer = json.load(open(sys.argv[2]))
o = ours.get("ours", ours)
print(json.dumps({
    "ours_framework": o.get("framework"),
    "peer_framework": peer["framework"],
    "train_img_per_s": ours["train_img_per_s"],
    "torch_train_img_per_s": peer["train_img_per_s"],
    "train_ratio_vs_torch": ours["train_img_per_s"] / peer["train_img_per_s"],
    "infer_img_per_s": ours["infer_img_per_s"],
    "torch_infer_img_per_s": peer["infer_img_per_s"],
    "infer_ratio_vs_torch": ours["infer_img_per_s"] / peer["infer_img_per_s"],
    "epoch_seconds": ours.get("epoch_seconds"),
    "torch_epoch_seconds": peer["epoch_seconds"],
    "epoch_ratio_vs_torch": peer["epoch_seconds"] / ours["epoch_seconds"] if ours.get("epoch_seconds") else None,
    "ours": o,
    "torch": peer,
}, indent=1))
PY
