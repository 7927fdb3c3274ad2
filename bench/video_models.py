"""Pooling and zero-shot speed, and peak memory against the number of videos.

Run: python bench/video_models.py [--videos 100000] [--workdir bench/_video_models]

Writes two synthetic datasets in the encode format (random unit frame embeddings, a class
name as caption): one of --videos / 10 videos and one of --videos. Each measurement runs in a
fresh process (so its peak RSS is its own) on both sizes, side by side:
  clip-video-pool --aggregator mean        videos/s, peak RSS
  zero-shot, frame-softmax over --classes  videos/s, peak RSS
and prints the ratio of peak RSS at --videos to that at --videos / 10 (flat memory: ~1).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time

import numpy as np


def make(dest: str, n: int, frames: int, dim: int, classes: int) -> None:
    from clip_video_encode.video_models.synthetic import write_dataset

    if os.path.exists(os.path.join(dest, "run.json")):
        return
    rng = np.random.default_rng(0)

    def videos():
        for i in range(n):
            x = rng.standard_normal((frames, dim), dtype=np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            yield x.astype(np.float16), {"caption": f"class {i % classes}"}

    write_dataset(dest, videos(), n, dim, "ViT-B-32", "openai", 5000)


def measure(what: str, dataset: str, classes: int, dim: int, out: str) -> dict:
    """Runs in a child process: the work, its wall time and the process's peak RSS."""
    from clip_video_encode.video_models.evaluate import Pooler, zeroshot
    from clip_video_encode.video_models.pool import pool_dataset

    began = time.perf_counter()
    if what == "pool":
        n = pool_dataset(dataset, Pooler("mean", dim, 32), out, progress=False)
    else:
        names = [f"class {c}" for c in range(classes)]
        rng = np.random.default_rng(1)
        emb = rng.standard_normal((classes, dim)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        n = zeroshot(dataset, emb, names, "caption", "frame-softmax", None, 32)["n"]
    seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    return {"videos": n, "seconds": seconds, "videos_per_s": n / seconds, "peak_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=100_000)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--classes", type=int, default=400)
    parser.add_argument("--workdir", default="bench/_video_models")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, dataset, out = args.child
        print(json.dumps(measure(what, dataset, args.classes, args.dim, out)))
        return
    sizes = [args.videos // 10, args.videos]
    for n in sizes:
        began = time.perf_counter()
        make(os.path.join(args.workdir, f"ds{n}"), n, args.frames, args.dim, args.classes)
        print(f"dataset of {n} videos ready ({time.perf_counter() - began:.0f} s)", flush=True)
    rows = {}
    for what in ("pool", "zeroshot"):
        for n in sizes:
            dataset = os.path.join(args.workdir, f"ds{n}")
            out = os.path.join(args.workdir, f"pooled{n}.parquet")
            child = [sys.executable, __file__, "--classes", str(args.classes), "--dim",
                     str(args.dim), "--child", what, dataset, out]  # fmt: skip
            result = json.loads(subprocess.run(child, capture_output=True, check=True,
                                               text=True).stdout.splitlines()[-1])  # fmt: skip
            rows[(what, n)] = result
    print(f"\n{args.frames} frames x {args.dim} dims per video, {args.classes} classes")
    print(f"{'task':<10}{'videos':>9}{'videos/s':>11}{'peak RSS MiB':>14}")
    for (what, _), r in rows.items():
        print(f"{what:<10}{r['videos']:>9}{r['videos_per_s']:>11.0f}{r['peak_mib']:>14.0f}")
    for what in ("pool", "zeroshot"):
        small, large = rows[(what, sizes[0])], rows[(what, sizes[1])]
        print(f"{what}: peak RSS at {sizes[1]} / at {sizes[0]} videos ="
              f" {large['peak_mib'] / small['peak_mib']:.2f}; speed ratio"
              f" {large['videos_per_s'] / small['videos_per_s']:.2f}")  # fmt: skip
    if os.environ.get("BENCH_KEEP") != "1":
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
