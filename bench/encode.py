"""Encoder speed inside the pipeline against the bare model, precisions, and peak memory.

Run: python bench/encode.py [--workdir bench/_videos]

Prints, measured in one run on this machine:
  (b) the bare ViT-B-32 image tower, fp32 vs bf16 (random weights, same checkpoint)
  (a) clip-video-encode frames/s end to end on cheap-to-decode videos (every frame kept, so
      the encoder is the bottleneck) against the bare model at the same batch and precision
  (d) peak RSS of clip-video-encode at 1 fps on a 10-minute and a 60-minute video
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

from clip_video_encode.dataset import EncodeJob
from clip_video_encode.encoder import Encoder, EncoderOptions, resolve_precision
from clip_video_encode.local import encode_dataset
from video2numpy import FrameOptions, Resize, Sampling
from video2numpy.synth import write_video


def bare(encoder: Encoder, frames: np.ndarray, rounds: int = 3) -> float:
    """Frames/s of the model alone (preprocessing included), best of ``rounds``."""
    encoder.encode(frames[: encoder.options.batch_size])  # warm-up
    best = min(_timed(encoder.encode, frames) for _ in range(rounds))
    return len(frames) / best


def _timed(fn, *args) -> float:
    began = time.perf_counter()
    fn(*args)
    return time.perf_counter() - began


def peak_rss_mb(argv: list[str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(argv, check=False, capture_output=True)
    return max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


def precisions(checkpoint: str, frames: np.ndarray, batch_size: int) -> dict:
    """(b) The bare image tower in fp32 and bf16."""
    import torch

    print(f"(b) bare ViT-B-32 image tower, batch {batch_size}, {torch.get_num_threads()} threads")
    speeds, outputs = {}, {}
    for precision in ("fp32", "bf16"):
        enc = Encoder(EncoderOptions("ViT-B-32", checkpoint, precision, "cpu", batch_size))
        # bf16 can be very slow on CPUs without native support: a smaller sample for it.
        sample = frames if precision == "fp32" else frames[:batch_size]
        speeds[precision] = bare(enc, sample, rounds=2 if precision == "fp32" else 1)
        outputs[precision] = enc.encode(frames[:32]).astype(np.float32)
        print(f"  {precision}: {speeds[precision]:.1f} img/s")
    a, b = outputs["fp32"], outputs["bf16"]
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    print(
        f"  bf16 / fp32 = {speeds['bf16'] / speeds['fp32']:.2f}x; cosine to fp32 >="
        f" {cos.min():.4f}; --precision auto picks {resolve_precision('auto', 'cpu')} here"
    )
    return speeds


def pipeline_vs_bare(encoder: Encoder, frames: np.ndarray, paths: list[str], rounds: int) -> None:
    """(a) The bare model and the whole pipeline, interleaved, best of each: this machine's
    speed drifts by up to 20% over minutes, which a one-shot comparison mistakes for overhead."""
    best_bare = best_pipe = 0.0
    n = 0
    for _ in range(rounds):
        best_bare = max(best_bare, len(frames) / _timed(encoder.encode, frames))
        with tempfile.TemporaryDirectory() as out:
            listing = os.path.join(out, "videos.txt")
            with open(listing, "w") as f:
                f.write("\n".join(paths))
            frame_options = FrameOptions(Sampling(), Resize(224))
            job = EncodeJob(listing, os.path.join(out, "ds"), frame_options, encoder.options,
                            workers=1)  # fmt: skip
            began = time.perf_counter()
            n = encode_dataset(job, encoder=encoder, progress=False)["frames"]
            best_pipe = max(best_pipe, n / (time.perf_counter() - began))
    print(
        f"\n(a) clip-video-encode, {n} frames from {len(paths)} videos, every frame, one decode"
        f" worker, {encoder.precision}, batch {encoder.options.batch_size}, best of {rounds}"
        " interleaved rounds"
    )
    print(
        f"  pipeline {best_pipe:.1f} frames/s vs bare model {best_bare:.1f} frames/s:"
        f" {best_pipe / best_bare:.2f}x (decoding and shard writing included)"
    )


def peak_memory(checkpoint: str, precision: str, workdir: str) -> None:
    """(d) Peak RSS of the CLI at 1 fps on a 10- and a 60-minute video."""
    print("\n(d) peak RSS of the largest process, clip-video-encode --fps 1 (workers included)")
    cli = [sys.executable, "-m", "clip_video_encode.cli", "--model", "ViT-B-32", "--pretrained",
           checkpoint, "--fps", "1", "--quiet", "--precision", precision]  # fmt: skip
    for minutes in (10, 60):
        path = os.path.join(workdir, f"long_{minutes}min.mp4")
        if not os.path.exists(path):
            print(f"  generating {path} ...", flush=True)
            write_video(path, n_frames=minutes * 60 * 30, fps=30, width=160, height=96, gop=250)
        with tempfile.TemporaryDirectory() as out:
            began = time.perf_counter()
            rss = peak_rss_mb([*cli, path, "--dest", os.path.join(out, "ds")])
            took = time.perf_counter() - began
        print(f"  {minutes:2d}-minute video ({minutes * 60} frames): {rss:.0f} MB, {took:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=os.path.join(os.path.dirname(__file__), "_videos"))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--sections", default="bad", help="which of b, a, d to run (bad)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds for (a)")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    import open_clip
    import torch

    torch.manual_seed(0)
    checkpoint = os.path.join(args.workdir, "vit-b-32-random.pt")
    if not os.path.exists(checkpoint):
        torch.save(open_clip.create_model("ViT-B-32").state_dict(), checkpoint)
    frames = np.random.default_rng(0).integers(0, 255, (256, 224, 224, 3), dtype=np.uint8)
    precision = resolve_precision("auto", "cpu")
    if "b" in args.sections:
        speeds = precisions(checkpoint, frames, args.batch_size)
        precision = max(speeds, key=speeds.get)
    if "a" in args.sections:
        paths = []
        for i in range(4):
            path = os.path.join(args.workdir, f"small_{i}.mp4")
            if not os.path.exists(path):
                write_video(path, n_frames=150, fps=30, width=160, height=120)
            paths.append(path)
        options = EncoderOptions("ViT-B-32", checkpoint, precision, "cpu", args.batch_size)
        encoder = Encoder(options)
        encoder.encode(frames[: args.batch_size])  # warm-up
        pipeline_vs_bare(encoder, frames, paths, args.rounds)
    if "d" in args.sections:
        peak_memory(checkpoint, precision, args.workdir)


if __name__ == "__main__":
    main()
