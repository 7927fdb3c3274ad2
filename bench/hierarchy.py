"""Hour-long videos through encode and hierarchy: wall time per stage and peak memory; and
the hierarchy's throughput over many ten-minute videos.

Run: python bench/hierarchy.py [--hours 1] [--videos 10000] [--ray] [--workdir bench/_hierarchy]
(``--videos 0`` leaves out the second part)

1. Writes one ``--hours``-long video (2 fps, 96x64 index-coded frames), encodes it at 1 fps
   with a random ViT-B-32 checkpoint (``clip-video-encode``, one decode worker), then runs
   ``clip-video-hierarchy`` on it. Peak memory is the largest sum of the resident sizes of the
   whole process tree (driver and decode worker), sampled every 0.1 s, also by tenth of the
   run. With ``--ray`` the same video is encoded again by the Ray executor (a Ray instance
   started here), whose peak memory is given per role (driver, decode actor, encoder actor,
   Ray's own processes) and whose sample is compared with the local one.
2. Writes ``--videos`` synthetic ten-minute videos (600 frames at 1 fps, 512-d) in the encode
   format and times ``clip-video-hierarchy`` over them: videos/s and peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np


def run_measured(argv: list[str], tenths: list | None = None, roles: dict | None = None
                 ) -> tuple[float, float, float]:  # fmt: skip
    """Wall seconds, peak resident MiB of the process tree of ``argv`` and of its main
    process alone. ``tenths``, if given, receives the tree's peak in each tenth of the run (is
    memory flat, or does it grow with the video?); ``roles``, if given, each role's peak (the
    sum over its processes; see ``role_of``)."""
    import psutil

    began = time.perf_counter()
    proc = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    peak = main_peak = 0.0
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample():
        nonlocal peak, main_peak
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                sizes = [p.memory_info().rss / 2**20 for p in tree]
                if roles is not None:
                    now: dict[str, float] = {}
                    for p, size in zip(tree, sizes, strict=True):
                        role = "driver" if p is root else role_of(p)
                        now[role] = now.get(role, 0.0) + size
                    for role, size in now.items():
                        roles[role] = max(roles.get(role, 0.0), size)
                samples.append((time.perf_counter() - began, sum(sizes)))
                peak = max(peak, sum(sizes))
                main_peak = max(main_peak, sizes[0])
            except psutil.Error:
                pass
            time.sleep(0.1)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    code = proc.wait()
    done.set()
    thread.join()
    if code != 0:
        raise SystemExit(f"{argv[:3]} failed with exit code {code}")
    wall = time.perf_counter() - began
    if tenths is not None:
        for k in range(10):
            part = [rss for t, rss in samples if k * wall / 10 <= t < (k + 1) * wall / 10]
            tenths.append(max(part, default=0.0))
    return wall, peak, main_peak


def role_of(process) -> str:
    """What a process under the driver is: a Ray actor by its title, else decode worker (the
    local executor's) or Ray's own processes."""
    title = " ".join(process.cmdline())
    for actor in ("DecodeWorker", "EncodeWorker", "Pipeline"):
        if f"ray::{actor}" in title:
            return actor
    if "ray" in title:
        return "Ray's own processes"
    return "decode worker"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--videos", type=int, default=10_000)
    parser.add_argument("--workdir", default="bench/_hierarchy")
    parser.add_argument("--ray", action="store_true",
                        help="also encode the long video with --distributor ray (a Ray instance"
                        " here, one decode actor, one encoder actor) and compare")  # fmt: skip
    args = parser.parse_args()
    work = args.workdir
    os.makedirs(work, exist_ok=True)
    import open_clip
    import torch

    from video2numpy.synth import write_video

    checkpoint = os.path.join(work, "vit-b-32-random.pt")
    if not os.path.exists(checkpoint):
        torch.manual_seed(0)
        torch.save(open_clip.create_model("ViT-B-32").state_dict(), checkpoint)
    seconds = int(args.hours * 3600)
    video = os.path.join(work, f"long_{seconds}s.mp4")
    if not os.path.exists(video):
        began = time.perf_counter()
        write_video(video, n_frames=2 * seconds, fps=2, width=96, height=64, gop=120)
        print(f"wrote a {seconds} s video in {time.perf_counter() - began:.0f} s", flush=True)
    dest, out = os.path.join(work, "encoded"), os.path.join(work, "hier")
    shutil.rmtree(dest, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    bin_dir = os.path.dirname(sys.executable)
    encode = [os.path.join(bin_dir, "clip-video-encode"), video, "--dest", dest, "--model",
              "ViT-B-32", "--pretrained", checkpoint, "--fps", "1", "--workers", "1",
              "--quiet"]  # fmt: skip
    tenths: list[float] = []
    encode_s, encode_mib, driver_mib = run_measured(encode, tenths)
    hier_s, hier_mib, _ = run_measured([os.path.join(bin_dir, "clip-video-hierarchy"), dest,
                                     "--out", out, "--quiet"])  # fmt: skip
    with open(os.path.join(dest, "run.json")) as f:
        precision = json.load(f)["precision"]
    print(f"\none {seconds / 3600:g} h video, 1 fps ({seconds} frames), ViT-B-32 {precision} on"
          " CPU (--precision auto):")  # fmt: skip
    print(f"  clip-video-encode     {encode_s:7.1f} s  ({seconds / encode_s:5.1f} frames/s)"
          f"  peak RSS {encode_mib:6.0f} MiB (driver + decode worker),"
          f" {driver_mib:.0f} MiB (driver)")  # fmt: skip
    print("  clip-video-encode peak RSS by tenth of its run (MiB):",
          " ".join(f"{m:.0f}" for m in tenths))  # fmt: skip
    print(f"  clip-video-hierarchy  {hier_s:7.1f} s  peak RSS {hier_mib:6.0f} MiB")
    if args.ray:
        on_ray(encode, dest, os.path.join(work, "encoded_ray"))
    if args.videos:
        many_videos(args.videos, work, checkpoint)
    if os.environ.get("BENCH_KEEP") != "1":
        shutil.rmtree(work, ignore_errors=True)


def on_ray(encode: list[str], local_dest: str, dest: str) -> None:
    """The same encode with the Ray executor: its time, each process's peak memory, and how
    its sample compares with the local executor's."""
    from clip_video_encode.read import iter_samples

    shutil.rmtree(dest, ignore_errors=True)
    argv = [*encode, "--distributor", "ray", "--decoders", "1", "--encoders", "1"]
    argv[argv.index("--dest") + 1] = dest
    roles: dict[str, float] = {}
    tenths: list[float] = []
    wall, tree, _ = run_measured(argv, tenths, roles)
    (key, ours, meta), = iter_samples(dest)  # fmt: skip
    (_, theirs, local_meta), = iter_samples(local_dest)  # fmt: skip
    a, b = ours.astype(np.float32), theirs.astype(np.float32)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    frames = len(ours)
    print(f"  clip-video-encode --distributor ray (1 decode actor, 1 encoder actor):"
          f" {wall:.1f} s ({frames / wall:.1f} frames/s)")  # fmt: skip
    shown = {r: m for r, m in roles.items() if m >= 1}  # a process gone before it was read
    print("    peak RSS by role (MiB): " + ", ".join(f"{r} {m:.0f}" for r, m in shown.items())
          + f"; the whole tree {tree:.0f}")  # fmt: skip
    print("    whole tree's peak RSS by tenth of the run (MiB):",
          " ".join(f"{m:.0f}" for m in tenths))  # fmt: skip
    same_stamps = meta["timestamps"] == local_meta["timestamps"]
    print(f"    one sample ({key}), {frames} frames; timestamps equal to the local run's:"
          f" {same_stamps}; lowest cosine to the local embeddings {cosine.min():.5f}")  # fmt: skip


def many_videos(n: int, work: str, checkpoint: str) -> None:
    """The hierarchy over ``n`` synthetic ten-minute videos in the encode format."""
    from clip_video_encode.video_models.synthetic import write_dataset

    many = os.path.join(work, f"many{n}")
    if not os.path.exists(os.path.join(many, "run.json")):
        rng = np.random.default_rng(0)

        def videos():
            for _ in range(n):
                x = rng.standard_normal((600, 512), dtype=np.float32)
                yield x.astype(np.float16), {"caption": None, "duration": 600.0,
                                              "timestamps": list(range(600))}  # fmt: skip

        write_dataset(many, videos(), n, 512, "ViT-B-32", checkpoint, 1000)
    many_out = os.path.join(work, "many_hier")
    bin_dir = os.path.dirname(sys.executable)
    shutil.rmtree(many_out, ignore_errors=True)
    many_s, many_mib, _ = run_measured([os.path.join(bin_dir, "clip-video-hierarchy"), many,
                                     "--out", many_out, "--quiet"])  # fmt: skip
    print(f"  {n} ten-minute videos (600 frames each): {many_s:.1f} s,"
          f" {n / many_s:.1f} videos/s, peak RSS {many_mib:.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
