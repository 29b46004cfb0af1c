#!/usr/bin/env python3
"""GPU peer of `siamese bench`: the seeds' CNN in PyTorch on CUDA, timed as `keras_bench.py` times
Keras (same architecture, T random triplets = 3T images a step, Adam lr 1e-3, Euclidean triplet
loss with margin 0.2, warm-up, median of step medians, a full epoch of the same step loop,
inference of a 512-image batch). Every timed region ends with `torch.cuda.synchronize()` (or
reads the loss back, as the Rust side does), so GPU work is counted, not just queued.

Prints one line `BENCH_JSON {...}` with the keys of `keras_bench.py`. Run it on a machine with
PyTorch installed (the GPU device has it); it needs no network.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from keras_bench import load_average, load_split, random_triplet_indices  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mnist", required=True, help="folder holding the four MNIST IDX files")
    p.add_argument("--device", default="cuda")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--triplets", type=int, default=128)
    p.add_argument("--infer-batch", type=int, default=512)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--margin", type=float, default=0.2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args()


def main():
    args = parse_args()
    import numpy as np
    import torch
    from torch import nn

    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    load_start = load_average()
    x_train, y_train = load_split(np, args.mnist, "train-images-idx3-ubyte", "train-labels-idx1-ubyte")
    x_test, _ = load_split(np, args.mnist, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    # NHWC -> NCHW, kept on the host like the Rust side's images; each step uploads its batch.
    x_train = np.ascontiguousarray(x_train.transpose(0, 3, 1, 2))
    x_test = np.ascontiguousarray(x_test.transpose(0, 3, 1, 2))
    by_class = [np.flatnonzero(y_train == c) for c in range(10)]
    rng = np.random.default_rng(args.seed)

    model = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(),
        nn.Conv2d(32, 64, 3), nn.ReLU(),
        nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(),
        nn.Linear(64 * 12 * 12, 128), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(128, args.dim),
    ).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    t = args.triplets

    def step(x_host):
        started = time.perf_counter()
        x = torch.from_numpy(x_host).to(dev)
        emb = model(x)
        a, p, n = emb[:t], emb[t:2 * t], emb[2 * t:]
        d_ap = torch.sqrt(((a - p) ** 2).sum(1) + 1e-12)
        d_an = torch.sqrt(((a - n) ** 2).sum(1) + 1e-12)
        loss = torch.relu(d_ap - d_an + args.margin).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = loss.item()  # waits for the step
        if not np.isfinite(value):
            sys.exit(f"training diverged: loss {value}")
        return time.perf_counter() - started

    def random_step():
        return step(x_train[random_triplet_indices(np, rng, by_class, t)])

    model.train()
    for _ in range(max(args.warmup, 1)):
        random_step()
    train_rounds = [statistics.median(random_step() for _ in range(args.steps)) * 1e3
                    for _ in range(args.rounds)]

    steps = len(x_train) // (3 * t)
    order = np.concatenate([random_triplet_indices(np, rng, by_class, t) for _ in range(steps)])
    started = time.perf_counter()
    for s in range(steps):
        step(x_train[order[s * 3 * t:(s + 1) * 3 * t]])
    epoch_seconds = time.perf_counter() - started

    model.eval()
    batch = x_test[: args.infer_batch]

    def infer():
        started = time.perf_counter()
        with torch.no_grad():
            model(torch.from_numpy(batch).to(dev)).cpu()
        return time.perf_counter() - started

    for _ in range(max(args.warmup, 1)):
        infer()
    infer_rounds = [statistics.median(infer() for _ in range(args.steps)) * 1e3
                    for _ in range(args.rounds)]
    train_ms = statistics.median(train_rounds)
    infer_ms = statistics.median(infer_rounds)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor()
    report = {
        "framework": f"pytorch {torch.__version__} on {name} (python {platform.python_version()})",
        "train_img_per_s": 3 * t / (train_ms / 1e3),
        "train_step_ms": train_rounds,
        "infer_img_per_s": len(batch) / (infer_ms / 1e3),
        "infer_batch_ms": infer_rounds,
        "epoch_seconds": epoch_seconds,
        "epoch_images": steps * 3 * t,
        "load_avg_start": load_start,
        "load_avg_end": load_average(),
        "notes": ["eager mode, fp32, cudnn defaults", "epoch: the same step loop"],
    }
    print("BENCH_JSON " + json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
