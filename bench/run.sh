#!/usr/bin/env bash
# Side-by-side benchmark: siamese (burn, CPU) vs the seeds' stack (Keras 3 on tensorflow-cpu).
# Builds the release binary, fetches MNIST if missing, and runs `siamese bench` with the given
# flags (e.g. --json, --steps 20, --no-peer). The first run creates the peer's virtual
# environment in the cache (<SIAMESE_HOME>/bench-venv) from bench/requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/siamese
"$bin" fetch mnist >&2
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$bin" bench "$@"
