"""Search latency and memory for 10k, 100k and 1M frames: exact (memory-mapped float16,
scored in slices) and ANN (faiss IVF + SQ8), with the ANN's recall@10 against exact.

Run: python bench/search.py [--sizes 10000,100000,1000000] [--queries 20]

The embeddings are synthetic but shaped like video: each video (40 frames) wanders slowly
around its own random direction in 512 dimensions, so neighbouring frames are alike and
videos differ, as with real CLIP features. Queries are noisy copies of random frames.
Each size runs in a fresh process. "exact peak" is the process's peak RSS during exact
queries (torch, imported for query encoding, is 0.5 GB of it) and "(added)" what they added
to the opened index; "ANN peak" the peak during ANN queries, with its index loaded (building
it reads every frame through the memory map, whose pages then count in the RSS).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

DIM, FRAMES_PER_VIDEO = 512, 40


def synthetic_videos(n_frames: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for v in range(n_frames // FRAMES_PER_VIDEO):
        centre = rng.standard_normal(DIM)
        walk = np.cumsum(rng.standard_normal((FRAMES_PER_VIDEO, DIM)) * 0.15, axis=0)
        frames = (centre + walk).astype(np.float32)
        times = np.arange(FRAMES_PER_VIDEO, dtype=np.float64)
        yield {"key": f"{v:09d}", "id": str(v), "location": None, "caption": None}, frames, times


def _status(field: str) -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024


def _rss_mb() -> float:
    return _status("VmRSS:")


def _peak_mb() -> float:
    return _status("VmHWM:")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:  # Linux: resets VmHWM to the current RSS
        f.write("5")


def child(n_frames: int, queries: int) -> dict:
    from clip_video_encode.search import (
        SearchIndex,
        build_ann,
        frame_scores,
        iter_top_frames,
        rank_moments,
        rank_moments_ann,
        write_index,
    )

    folder = tempfile.mkdtemp(prefix="search-bench-")
    began = time.perf_counter()
    write_index(folder, synthetic_videos(n_frames), {"model": "synthetic"})
    built = time.perf_counter() - began
    index = SearchIndex(folder)
    baseline = _rss_mb()
    rng = np.random.default_rng(1)
    rows = rng.choice(len(index), size=queries, replace=False)
    qs = [
        np.asarray(index.embeddings[r], np.float32) + rng.standard_normal(DIM) * 0.02 for r in rows
    ]
    exact_ms, ann_ms, recalls, truths = [], [], [], []
    _reset_peak()  # the exact search's own peak, before the ANN index exists
    for q in qs:
        t = time.perf_counter()
        rank_moments(index, frame_scores(index, q), top=10)
        exact_ms.append((time.perf_counter() - t) * 1000)
        truths.append({row for row, _ in iter_top_frames(index, q, 10)})
    exact_peak = _peak_mb()
    began = time.perf_counter()
    ann = build_ann(index, nprobe=16)
    ann_built = time.perf_counter() - began
    ann = build_ann(index, nprobe=16)  # as a query would: read back from its file
    _reset_peak()
    for q, truth in zip(qs, truths, strict=True):
        t = time.perf_counter()
        rank_moments_ann(index, ann, q, top=10)
        ann_ms.append((time.perf_counter() - t) * 1000)
        qn = q / np.linalg.norm(q)
        _, found = ann.search(qn[None].astype(np.float32), 10)
        recalls.append(len(truth & set(found[0].tolist())) / 10)
    return {
        "frames": len(index),
        "index_build_s": round(built, 1),
        "ann_build_s": round(ann_built, 1),
        "exact_ms": round(statistics.median(exact_ms), 1),
        "ann_ms": round(statistics.median(ann_ms), 1),
        "recall_at_10": round(float(np.mean(recalls)), 3),
        "exact_peak_mb": round(exact_peak),
        "exact_added_mb": round(exact_peak - baseline),
        "ann_peak_mb": round(_peak_mb()),
        "index_mb": round(os.path.getsize(index.path("embeddings.npy")) / 2**20),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.queries)))
        return
    print(
        f"{'frames':>9} {'exact ms':>9} {'ANN ms':>7} {'recall@10':>9} {'exact peak':>10}"
        f" {'(added)':>8} {'ANN peak':>9} {'index':>7} {'build s':>8} {'ANN build s':>11}"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(size), "--queries", str(args.queries)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{r['frames']:>9} {r['exact_ms']:>9} {r['ann_ms']:>7} {r['recall_at_10']:>9}"
            f" {r['exact_peak_mb']:>7} MB {r['exact_added_mb']:>5} MB {r['ann_peak_mb']:>6} MB"
            f" {r['index_mb']:>4} MB"
            f" {r['index_build_s']:>8}"
            f" {r['ann_build_s']:>11}"
        )


if __name__ == "__main__":
    main()
