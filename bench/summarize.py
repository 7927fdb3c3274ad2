"""Summaries at scale: videos/s over many ten-minute videos, and the time KTS plus the knapsack
take on one hour-long video at 4 fps (the target: at most 10 s on a 2-core machine).

Run: python bench/summarize.py [--videos 1000] [--workdir bench/_summarize]

1. Writes (once) ``--videos`` synthetic ten-minute videos (600 frames at 1 fps, 512-d, 30 fps
   sources) in the encode format, made of shots of 2-20 s (a direction each, plus noise), and
   times ``summarize_dataset`` over them with a query (KTS shots, exact knapsack): videos/s
   and peak resident memory.
2. One hour at 4 fps (14,400 frames, shots of 1-60 s): KTS, then the query scores and the
   knapsack over the 108,000 source frames (capacity 16,200), each timed.
3. Beside it, where ``ruptures`` is installed: its kernel change-point detection (PELT, linear
   kernel) with one penalty on the same frames made of three shots, the case where PELT
   cannot prune; KTS here is timed on the same frames.
4. ``clip-video-summarize eval`` on a benchmark of TVSum's size (50 videos of 2-10 minutes at
   30 fps, 20 annotators; synthetic files in TVSum's formats) with a scores file: the method
   and both baselines (100 random draws), wall time.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

DIM = 512


def shot_frames(rng, n: int, fps: float, shortest: float, longest: float) -> np.ndarray:
    """``n`` unit-norm frames in shots of ``shortest``-``longest`` seconds."""
    lengths = []
    while sum(lengths) < n:
        lengths.append(max(1, int(rng.uniform(shortest, longest) * fps)))
    labels = np.repeat(np.arange(len(lengths)), lengths)[:n]
    directions = rng.normal(size=(len(lengths), DIM))
    frames = directions[labels] + 0.6 * rng.normal(size=(n, DIM))
    return (frames / np.linalg.norm(frames, axis=1, keepdims=True)).astype(np.float32)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def many_videos(workdir: str, n_videos: int) -> None:
    from clip_video_encode.summarize import SummaryOptions, summarize_dataset
    from clip_video_encode.video_models.synthetic import write_dataset

    dest = os.path.join(workdir, f"ds_{n_videos}")
    rng = np.random.default_rng(0)
    if not os.path.exists(os.path.join(dest, "run.json")):

        def rows():
            for _ in range(n_videos):
                frames = shot_frames(rng, 600, 1.0, 2, 20).astype(np.float16)
                meta = {"caption": None, "timestamps": np.arange(600.0).tolist(),
                        "duration": 600.0, "source_fps": 30.0}  # fmt: skip
                yield frames, meta

        began = time.perf_counter()
        write_dataset(dest, rows(), n_videos, DIM, "ViT-B-32", "none", 100)
        print(f"wrote {n_videos} videos in {time.perf_counter() - began:.1f} s")
    query = rng.normal(size=(1, DIM)).astype(np.float32)
    before = peak_mib()
    began = time.perf_counter()
    count = shots = chosen = 0
    for summary in summarize_dataset(dest, SummaryOptions(), queries=query, progress=False):
        count += 1
        shots += len(summary.shots)
        chosen += sum(s.selected for s in summary.shots)
    seconds = time.perf_counter() - began
    print(f"{count} ten-minute videos at 1 fps: {seconds:.1f} s, {count / seconds:.1f} videos/s"
          f" ({shots / count:.1f} shots and {chosen / count:.1f} chosen per video);"
          f" peak RSS {peak_mib():.0f} MiB (before: {before:.0f} MiB)")  # fmt: skip


def hour_long() -> np.ndarray:
    from clip_video_encode.summarize import SummaryOptions, kts, summarize_video
    from clip_video_encode.summarize.scores import query_scores

    rng = np.random.default_rng(1)
    frames = shot_frames(rng, 14_400, 4.0, 1, 60)
    times = np.arange(14_400) / 4.0
    query = rng.normal(size=(1, DIM)).astype(np.float32)
    began = time.perf_counter()
    points = kts(frames, max_shot=240)
    kts_s = time.perf_counter() - began
    began = time.perf_counter()
    scores = query_scores(frames, query)
    summary = summarize_video(frames, times, scores, 3600.0, 30.0, SummaryOptions(), points=points)
    rest_s = time.perf_counter() - began
    chosen = sum(s.selected for s in summary.shots)
    total = kts_s + rest_s
    print(f"one hour at 4 fps (14,400 frames): KTS {kts_s:.2f} s ({len(points) + 1} shots),"
          f" scores + knapsack over {summary.capacity} of 108,000 source frames {rest_s:.2f} s"
          f" ({chosen} shots, {summary.summary_seconds:.0f} s); total {total:.2f} s"
          f" = {total / 10:.2f} of the 10 s target")  # fmt: skip
    return frames


def against_ruptures() -> None:
    try:
        import ruptures
    except ImportError:
        print("ruptures is not installed: its comparison is left out")
        return
    from clip_video_encode.summarize import kts

    rng = np.random.default_rng(2)
    labels = np.arange(14_400) * 3 // 14_400
    frames = rng.normal(size=(3, DIM))[labels] + 0.6 * rng.normal(size=(14_400, DIM))
    frames = (frames / np.linalg.norm(frames, axis=1, keepdims=True)).astype(np.float32)
    began = time.perf_counter()
    kts(frames, max_shot=240)
    ours = time.perf_counter() - began
    began = time.perf_counter()
    ruptures.KernelCPD(kernel="linear", min_size=1).fit(frames).predict(pen=5.0)
    theirs = time.perf_counter() - began
    print(f"14,400 frames in three shots: ruptures KernelCPD (one penalty) {theirs:.1f} s; KTS"
          f" here (every penalty it tries, shots <= 60 s) {ours:.1f} s;"
          f" ratio {theirs / ours:.1f}x")  # fmt: skip


def tvsum_sized_eval(workdir: str) -> None:
    import json

    from clip_video_encode.summarize.cli import main as summarize_main

    rng = np.random.default_rng(3)
    anno, info = os.path.join(workdir, "anno.tsv"), os.path.join(workdir, "info.tsv")
    predictions = {}
    with open(anno, "w") as a, open(info, "w") as i:
        i.write("category\tvideo_id\ttitle\turl\tlength\n")
        for v in range(50):
            seconds = int(rng.integers(120, 600))
            segments = rng.integers(1, 6, size=seconds // 2 + 1)
            truth = np.repeat(segments, 60)[: seconds * 30]
            for _ in range(20):
                shift = np.repeat(rng.integers(-1, 2, size=len(segments)), 60)[: len(truth)]
                user = np.clip(truth + shift, 1, 5)
                a.write(f"v{v}\tVT\t{','.join(map(str, user[: seconds * 30]))}\n")
            i.write(f"VT\tv{v}\ttitle\turl\t{seconds // 60}:{seconds % 60:02d}\n")
            predictions[f"v{v}"] = (truth + rng.normal(0, 1.5, size=len(truth))).round(3).tolist()
    scores = os.path.join(workdir, "scores.json")
    with open(scores, "w") as f:
        json.dump(predictions, f)
    frames = sum(len(p) for p in predictions.values())
    began = time.perf_counter()
    code = summarize_main(["eval", "--tvsum-anno", anno, "--tvsum-info", info, "--scores",
                           scores, "--shots", "fixed:2", "--quiet"])  # fmt: skip
    seconds = time.perf_counter() - began
    print(f"eval on a TVSum-sized benchmark (50 videos, {frames} frames, 20 annotators; the"
          f" method, human and 100 random draws): {seconds:.1f} s (exit code {code})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=1000)
    parser.add_argument("--workdir", default=os.path.join(os.path.dirname(__file__), "_summarize"))
    parser.add_argument("--clean", action="store_true", help="remove the work folder after")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    many_videos(args.workdir, args.videos)  # first: its peak memory is its own
    hour_long()
    against_ruptures()
    tvsum_sized_eval(args.workdir)
    if args.clean:
        shutil.rmtree(args.workdir)


if __name__ == "__main__":
    main()
