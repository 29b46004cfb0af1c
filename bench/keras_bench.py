#!/usr/bin/env python3
"""The peer of `siamese bench`: the seeds' CNN in Keras 3 on TensorFlow (CPU), timed the same way.

Same architecture (conv 3x3 32 -> conv 3x3 64 -> max-pool 2 -> dropout 0.25 -> dense 128 ->
dropout 0.5 -> dense D), same batch (T random triplets = 3T images, anchors/positives/negatives
in one forward), Adam (lr 1e-3), Euclidean triplet loss with margin 0.2, warm-up steps, the
median of the timed steps per round and the median of the rounds, the same thread count.
Peak resident memory is VmHWM from /proc/self/status, reset (clear_refs 5) after the data and
the model are loaded, read after training (the timed steps and the epoch), before inference.

Prints one line `BENCH_JSON {...}` on stdout; `siamese bench` runs it in its own virtual
environment (bench/requirements.txt) and reads that line.
"""

import argparse
import json
import os
import platform
import statistics
import struct
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mnist", required=True, help="folder holding the four MNIST IDX files")
    p.add_argument("--steps", type=int, default=10, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before the first round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--triplets", type=int, default=128, help="triplets per training step")
    p.add_argument("--infer-batch", type=int, default=512)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--margin", type=float, default=0.2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-epoch", action="store_true", help="skip the full-epoch timing")
    return p.parse_args()


def pin_threads(n):
    """Thread counts must be set before TensorFlow starts its runtime."""
    for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ[var] = str(n)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["KERAS_BACKEND"] = "tensorflow"


def read_idx(path, magic, header):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < header or struct.unpack(">I", data[:4])[0] != magic:
        sys.exit(f"{path}: not an IDX file with magic {magic}")
    return data


def load_split(np, folder, images_name, labels_name):
    img = read_idx(os.path.join(folder, images_name), 2051, 16)
    n, rows, cols = struct.unpack(">III", img[4:16])
    x = np.frombuffer(img, dtype=np.uint8, offset=16, count=n * rows * cols)
    x = x.reshape(n, rows, cols, 1).astype(np.float32) / 255.0
    lab = read_idx(os.path.join(folder, labels_name), 2049, 8)
    y = np.frombuffer(lab, dtype=np.uint8, offset=8).astype(np.int64)
    return x, y


def random_triplet_indices(np, rng, by_class, count):
    """The seeds' generator: anchor and positive share a class (distinct images), the negative's
    class differs. Returns [anchors..., positives..., negatives...] (3 * count indices)."""
    classes = len(by_class)
    out = np.empty((3, count), dtype=np.int64)
    for i in range(count):
        c = rng.integers(classes)
        members = by_class[c]
        a, p = rng.choice(len(members), size=2, replace=False)
        nc = (c + 1 + rng.integers(classes - 1)) % classes
        out[0, i], out[1, i] = members[a], members[p]
        out[2, i] = by_class[nc][rng.integers(len(by_class[nc]))]
    return out.reshape(-1)


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return "training (VmHWM reset after loading data and model)"
    except OSError:
        return "process lifetime (VmHWM could not be reset)"


def peak_rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def load_average():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def main():
    args = parse_args()
    pin_threads(args.threads)
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras
    from keras import layers, ops

    keras.utils.set_random_seed(args.seed)
    load_start = load_average()
    x_train, y_train = load_split(np, args.mnist, "train-images-idx3-ubyte", "train-labels-idx1-ubyte")
    x_test, _ = load_split(np, args.mnist, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    by_class = [np.flatnonzero(y_train == c) for c in range(10)]
    rng = np.random.default_rng(args.seed)

    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(32, 3, activation="relu"),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(args.dim),
        ]
    )
    t = args.triplets
    margin = args.margin

    def triplet_loss(_y_true, y_pred):
        a, p, n = y_pred[:t], y_pred[t : 2 * t], y_pred[2 * t :]
        d_ap = ops.sqrt(ops.sum(ops.square(a - p), axis=1) + 1e-12)
        d_an = ops.sqrt(ops.sum(ops.square(a - n), axis=1) + 1e-12)
        return ops.mean(ops.relu(d_ap - d_an + margin))

    model.compile(optimizer=keras.optimizers.Adam(learning_rate=args.lr), loss=triplet_loss)
    dummy = np.zeros((3 * t,), dtype=np.float32)

    def step():
        x = x_train[random_triplet_indices(np, rng, by_class, t)]
        started = time.perf_counter()
        loss = model.train_on_batch(x, dummy)
        if not np.isfinite(loss):
            sys.exit(f"training diverged: loss {loss}")
        return time.perf_counter() - started

    rss_scope = reset_peak_rss()
    for _ in range(max(args.warmup, 1)):
        step()
    train_rounds = []
    for _ in range(args.rounds):
        train_rounds.append(statistics.median(step() for _ in range(args.steps)) * 1e3)

    epoch_seconds, epoch_images = None, 0
    if not args.no_epoch:
        steps = len(x_train) // (3 * t)
        order = np.concatenate([random_triplet_indices(np, rng, by_class, t) for _ in range(steps)])
        started = time.perf_counter()
        x_epoch = x_train[order]
        model.fit(x_epoch, np.zeros((len(order),), np.float32), batch_size=3 * t, epochs=1,
                  shuffle=False, verbose=0)
        epoch_seconds = time.perf_counter() - started
        epoch_images = len(order)
    peak = peak_rss_mb()

    batch = x_test[: args.infer_batch]
    for _ in range(max(args.warmup, 1)):
        model.predict_on_batch(batch)
    infer_rounds = []
    for _ in range(args.rounds):
        times = []
        for _ in range(args.steps):
            started = time.perf_counter()
            model.predict_on_batch(batch)
            times.append(time.perf_counter() - started)
        infer_rounds.append(statistics.median(times) * 1e3)

    train_ms = statistics.median(train_rounds)
    infer_ms = statistics.median(infer_rounds)
    report = {
        "framework": f"keras {keras.__version__} + tensorflow {tf.__version__} (python {platform.python_version()})",
        "train_img_per_s": 3 * t / (train_ms / 1e3),
        "train_step_ms": train_rounds,
        "infer_img_per_s": len(batch) / (infer_ms / 1e3),
        "infer_batch_ms": infer_rounds,
        "epoch_seconds": epoch_seconds,
        "epoch_images": epoch_images,
        "peak_rss_mb": peak,
        "peak_rss_scope": rss_scope,
        "threads": args.threads,
        "load_avg_start": load_start,
        "load_avg_end": load_average(),
        "notes": [f"jit_compile={model.jit_compile}", "train step: train_on_batch; epoch: fit"],
    }
    print("BENCH_JSON " + json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
