"""The FAISS side of `siamese bench index`: IndexFlatL2 (exact, batch of all queries) and
IndexHNSWFlat (M and efConstruction as siamese passes them) on the vectors siamese wrote, with the
same thread count; recall@10 against siamese's exact top-10; thread CPU time per query beside the
wall-clock rates. Prints one `BENCH_JSON {...}` line.

usage: faiss_bench.py BASE.npy QUERIES.npy TRUTH.npy --threads N --efs 16,32,64
"""

import argparse
import json
import resource
import time

import faiss
import numpy as np


def recall(found, truth):
    k = truth.shape[1]
    return float(np.mean([len(set(f[:k]) & set(t)) / k for f, t in zip(found, truth)]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("queries")
    ap.add_argument("truth")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--efs", default="16,32,64,128")
    ap.add_argument("--m", type=int, default=32)
    ap.add_argument("--ef-construction", type=int, default=128)
    args = ap.parse_args()
    faiss.omp_set_num_threads(args.threads)
    base = np.ascontiguousarray(np.load(args.base), dtype=np.float32)
    queries = np.ascontiguousarray(np.load(args.queries), dtype=np.float32)
    truth = np.load(args.truth)
    n, dim = base.shape
    k = truth.shape[1]

    flat = faiss.IndexFlatL2(dim)
    flat.add(base)
    start = time.perf_counter()
    flat.search(queries, k)
    flat_qps = len(queries) / (time.perf_counter() - start)
    del flat

    hnsw = faiss.IndexHNSWFlat(dim, args.m)
    hnsw.hnsw.efConstruction = args.ef_construction
    start = time.perf_counter()
    hnsw.add(base)
    build = time.perf_counter() - start

    sweep = []
    for ef in [int(e) for e in args.efs.split(",")]:
        hnsw.hnsw.efSearch = ef
        latencies = []
        found = []
        cpu_start = time.thread_time_ns()
        start = time.perf_counter()
        for i in range(len(queries)):
            t = time.perf_counter()
            _, ids = hnsw.search(queries[i : i + 1], k)
            latencies.append((time.perf_counter() - t) * 1e3)
            found.append(ids[0])
        batch1 = time.perf_counter() - start
        cpu_us = (time.thread_time_ns() - cpu_start) / 1e3 / len(queries)
        start = time.perf_counter()
        hnsw.search(queries, k)
        batch = time.perf_counter() - start
        lat = np.sort(np.array(latencies))
        q = lambda p: float(lat[int(round((len(lat) - 1) * p))])
        sweep.append(
            {
                "ef": ef,
                "recall_at_10": recall(found, truth),
                "qps_batch1": len(queries) / batch1,
                "qps_batch1000": len(queries) / batch,
                "p50_ms": q(0.5),
                "p99_ms": q(0.99),
                "cpu_us_batch1": cpu_us,
            }
        )
    report = {
        "version": faiss.__version__,
        "flat_qps_batch1000": flat_qps,
        "hnsw_build_seconds": build,
        "hnsw_m": args.m,
        "hnsw_ef_construction": args.ef_construction,
        "sweep": sweep,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }
    print("BENCH_JSON " + json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
