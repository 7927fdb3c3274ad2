"""Decode speed of each backend and sampling mode against the decoder's own limit.

Run: python bench/decode.py [--seconds 60] [--workdir bench/_videos]

For generated 360p and 720p H.264 videos (60 s, 30 fps, B-frames, moving texture) it prints,
measured side by side in one run, single-threaded as the worker pool runs them:
  limit      PyAV decoding every frame, no conversion (the decoder's ceiling on this file)
  pyav/decord  open + sample + decode + resize to 224 + centre crop, for --fps 1 and
               --num-frames 8
with frames/s, video-seconds decoded per second, and the ratio to the limit.
Then the worker pool (one process per core) on several videos against the limit on as many
processes, the peak memory of the CLI, and how decoding time grows with a video's length:
one video of 10, 20 and 40 minutes (--lengths) sampled at --fps 10, whose time per sampled
frame must stay flat (linear cost), next to decoding every frame of the same file.

Run one part alone with --sections (speed, pool, memory, length).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import av

from video2numpy import FrameOptions, Resize, Sampling, open_video, read_videos, select_frames
from video2numpy.reader import default_workers
from video2numpy.synth import write_video

SIZES = {"360p": (640, 360), "720p": (1280, 720)}
MODES = {"fps1": Sampling(fps=1), "num8": Sampling(num_frames=8)}


def full_decode(path: str) -> int:
    """The limit: every frame decoded, single-threaded, not converted."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type, stream.thread_count = "SLICE", 1
        return sum(1 for _ in container.decode(stream))


def sampled_decode(path: str, backend: str, sampling: Sampling) -> int:
    video = open_video(path, backend, threads=1)
    indices = select_frames(video.frame_times, sampling, video.end_time)
    return sum(len(f) for f, _ in video.iter_frames(indices, Resize(224)))


def interleaved(jobs: dict, rounds: int) -> dict:
    """Best time of each job over ``rounds``, running the jobs in turn each round, so that a
    slow moment of a shared machine does not fall on one job only."""
    best: dict = {}
    for _ in range(rounds):
        for key, (fn, args) in jobs.items():
            began = time.perf_counter()
            result = fn(*args)
            seconds = time.perf_counter() - began
            if key not in best or seconds < best[key][0]:
                best[key] = (seconds, result)
    return best


def peak_rss_mb(argv: list[str]) -> float:
    """Peak resident memory (MB) of the largest process a command ran (workers included)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(argv, check=False, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(before, after) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workdir", default=os.path.join(os.path.dirname(__file__), "_videos"))
    parser.add_argument("--sections", default="speed,pool,memory,length")
    parser.add_argument("--lengths", default="10,20,40", help="minutes, for the length section")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    sections = set(args.sections.split(","))
    if "length" in sections:
        length_scaling(args.workdir, [float(m) for m in args.lengths.split(",")])
    if not sections & {"speed", "pool", "memory"}:
        return
    paths = {}
    for name, (w, h) in SIZES.items():
        paths[name] = os.path.join(args.workdir, f"{name}_{args.seconds}s.mp4")
        if not os.path.exists(paths[name]):
            print(f"generating {paths[name]} ...", flush=True)
            write_video(
                paths[name],
                n_frames=30 * args.seconds,
                fps=30,
                width=w,
                height=h,
                gop=250,
                texture=True,
            )

    if "speed" in sections:
        speed_section(paths, args)
    if "pool" in sections:
        pool_section(paths, args)
    if "memory" in sections:
        memory_section(paths, args)


def length_scaling(workdir: str, minutes: list[float]) -> None:
    """Sampled decoding must cost the same per frame however long the video."""
    print("\nlength: one 30 fps 96x64 H.264 video (GOP 250) per length, --fps 10, pyav")
    print(f"{'minutes':>7} {'frames':>7} {'sampled':>7} {'s':>7} {'ms/sampled':>10}"
          f" {'full decode s':>13}")  # fmt: skip
    per_frame = []
    for m in minutes:
        path = os.path.join(workdir, f"96p_{m:g}min.mp4")
        if not os.path.exists(path):
            print(f"generating {path} ...", flush=True)
            write_video(path, n_frames=int(30 * 60 * m), fps=30, width=96, height=64, gop=250)
        best = interleaved({"sampled": (sampled_decode, (path, "pyav", Sampling(fps=10))),
                            "full": (full_decode, (path,))}, rounds=2)  # fmt: skip
        seconds, n = best["sampled"]
        per_frame.append(seconds / n)
        print(f"{m:7g} {int(30 * 60 * m):7d} {n:7d} {seconds:7.2f} {1e3 * seconds / n:10.3f}"
              f" {best['full'][0]:13.2f}")  # fmt: skip
    print(
        f"  time per sampled frame, longest / shortest: {per_frame[-1] / per_frame[0]:.2f}x"
        " (1.0 = linear)"
    )


def speed_section(paths: dict, args) -> None:
    print(f"\nsingle process, 1 decoder thread, {args.seconds} s videos at 30 fps, output 224x224")
    print(f"best of {args.rounds} interleaved rounds")
    print(
        f"{'video':6} {'what':14} {'frames':>6} {'s':>7} {'frames/s':>9} {'video-s/s':>9}"
        f" {'vs limit':>9}"
    )
    for name, path in paths.items():
        jobs = {"limit (full)": (full_decode, (path,))}
        for backend in ("pyav", "decord"):
            for mode, sampling in MODES.items():
                jobs[f"{backend} {mode}"] = (sampled_decode, (path, backend, sampling))
        best = interleaved(jobs, args.rounds)
        limit = args.seconds / best["limit (full)"][0]
        for what, (seconds, n) in best.items():
            speed = args.seconds / seconds
            print(
                f"{name:6} {what:14} {n:6d} {seconds:7.3f} {n / seconds:9.0f} {speed:9.1f}"
                f" {speed / limit:8.2f}x"
            )


def pool_section(paths: dict, args) -> None:
    workers = default_workers()
    copies = [paths["360p"]] * (6 * workers)
    print(
        f"\nworker pool: {len(copies)} x 360p, {workers} processes, --fps 1, best of 3"
        " interleaved rounds, process start-up included"
    )

    def limit_pool() -> int:
        with ProcessPoolExecutor(workers) as pool:
            return sum(pool.map(full_decode, copies))

    def our_pool(backend: str) -> int:
        options = FrameOptions(Sampling(fps=1), Resize(224), backend=backend)
        return sum(len(f) for f, _ in read_videos(copies, options, workers=workers))

    best = interleaved(
        {
            "limit": (limit_pool, ()),
            "pyav": (our_pool, ("pyav",)),
            "decord": (our_pool, ("decord",)),
        },
        rounds=3,
    )
    limit = len(copies) * args.seconds / best["limit"][0]
    for backend in ("pyav", "decord"):
        seconds, frames = best[backend]
        speed = len(copies) * args.seconds / seconds
        print(
            f"  {backend:7} {frames} frames in {seconds:.2f} s: {speed:.0f}x realtime,"
            f" {speed / limit:.2f}x the limit ({limit:.0f}x realtime on {workers} processes)"
        )


def memory_section(paths: dict, args) -> None:
    workers = default_workers()
    print("\nmemory: peak RSS of the largest process of `video2numpy --fps 1` (workers included)")
    long_path = os.path.join(args.workdir, "160p_600s.mp4")
    if not os.path.exists(long_path):
        print(f"generating {long_path} ...", flush=True)
        write_video(long_path, n_frames=30 * 600, fps=30, width=288, height=160, gop=250)
    cli = [sys.executable, "-m", "video2numpy.cli", "--fps", "1", "--workers", str(workers)]
    with tempfile.TemporaryDirectory() as out:
        for n in (4, 16):
            listing = os.path.join(out, f"{n}.txt")
            with open(listing, "w") as f:
                f.write("\n".join([paths["360p"]] * n))
            rss = peak_rss_mb([*cli, listing, "--dest", os.path.join(out, str(n)), "--overwrite"])
            print(f"  {n:2d} x 360p 60 s videos: {rss:.0f} MB")
        rss = peak_rss_mb([*cli, long_path, "--dest", os.path.join(out, "long")])
        print(f"  one 600 s video (600 frames, 90 MB of output): {rss:.0f} MB")


if __name__ == "__main__":
    main()
