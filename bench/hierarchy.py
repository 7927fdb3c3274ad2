"""Hour-long videos through encode and hierarchy: wall time per stage and peak memory; and
the hierarchy's throughput over many ten-minute videos.

Run: python bench/hierarchy.py [--hours 1] [--videos 10000] [--workdir bench/_hierarchy]

1. Writes one ``--hours``-long video (2 fps, 96x64 index-coded frames), encodes it at 1 fps
   with a random ViT-B-32 checkpoint (``clip-video-encode``, one decode worker), then runs
   ``clip-video-hierarchy`` on it. Peak memory is the largest sum of the resident sizes of the
   whole process tree (driver and decode worker), sampled every 0.1 s.
2. Writes ``--videos`` synthetic ten-minute videos (600 frames at 1 fps, 512-d) in the encode
   format and times ``clip-video-hierarchy`` over them: videos/s and peak memory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np


def run_measured(argv: list[str]) -> tuple[float, float, float]:
    """Wall seconds, peak resident MiB of the process tree of ``argv`` and of its main
    process alone."""
    import psutil

    began = time.perf_counter()
    proc = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    peak = main_peak = 0.0
    done = threading.Event()

    def sample():
        nonlocal peak, main_peak
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree) / 2**20)
                main_peak = max(main_peak, root.memory_info().rss / 2**20)
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
    return time.perf_counter() - began, peak, main_peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--videos", type=int, default=10_000)
    parser.add_argument("--workdir", default="bench/_hierarchy")
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
    encode_s, encode_mib, driver_mib = run_measured(encode)
    hier_s, hier_mib, _ = run_measured([os.path.join(bin_dir, "clip-video-hierarchy"), dest,
                                     "--out", out, "--quiet"])  # fmt: skip
    print(f"\none {seconds / 3600:g} h video, 1 fps ({seconds} frames), ViT-B-32 fp32 on CPU:")
    print(f"  clip-video-encode     {encode_s:7.1f} s  ({seconds / encode_s:5.1f} frames/s)"
          f"  peak RSS {encode_mib:6.0f} MiB (driver + decode worker),"
          f" {driver_mib:.0f} MiB (driver)")  # fmt: skip
    print(f"  clip-video-hierarchy  {hier_s:7.1f} s  peak RSS {hier_mib:6.0f} MiB")

    from clip_video_encode.video_models.synthetic import write_dataset

    many = os.path.join(work, f"many{args.videos}")
    if not os.path.exists(os.path.join(many, "run.json")):
        rng = np.random.default_rng(0)

        def videos():
            for _ in range(args.videos):
                x = rng.standard_normal((600, 512), dtype=np.float32)
                yield x.astype(np.float16), {"caption": None, "duration": 600.0,
                                              "timestamps": list(range(600))}  # fmt: skip

        write_dataset(many, videos(), args.videos, 512, "ViT-B-32", checkpoint, 1000)
    many_out = os.path.join(work, "many_hier")
    shutil.rmtree(many_out, ignore_errors=True)
    many_s, many_mib, _ = run_measured([os.path.join(bin_dir, "clip-video-hierarchy"), many,
                                     "--out", many_out, "--quiet"])  # fmt: skip
    print(f"  {args.videos} ten-minute videos (600 frames each): {many_s:.1f} s,"
          f" {args.videos / many_s:.1f} videos/s, peak RSS {many_mib:.0f} MiB")  # fmt: skip
    if os.environ.get("BENCH_KEEP") != "1":
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
