"""Encoder speed inside the pipeline against the bare model, precisions, and peak memory.

Run: python bench/encode.py [--workdir bench/_videos]

Prints, measured in one run on this machine:
  (b) the bare ViT-B-32 image tower, fp32 vs bf16 (random weights, same checkpoint)
  (a) clip-video-encode frames/s end to end on cheap-to-decode videos (every frame kept, so
      the encoder is the bottleneck) against the bare model at the same batch and precision
  (c) end to end, 10 x 60 s 360p videos at 1 fps, this project against LAION's
      clip-video-encode 1.3.0 (its own virtualenv: bench/setup_clip_video_encode_130.sh),
      both given the same random ViT-B-32 checkpoint file, interleaved rounds
  (d) peak RSS of clip-video-encode at 1 fps on a 10-minute and a 60-minute video
  (e) engines: the bare tower on torch fp32, ONNX Runtime fp32 and ONNX Runtime int8 (img/s,
      lowest cosine to torch fp32), and the pipeline against the bare tower with int8
(c) also runs this project with --precision int8 (ONNX Runtime) when onnxruntime is installed
(the tower exported and quantised once before the timed rounds, as a second run finds it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from clip_video_encode.execute.local import encode_dataset
from clip_video_encode.models.encoder import Encoder, EncoderOptions, resolve_precision
from clip_video_encode.plan.job import EncodeJob
from video2numpy import FrameOptions, Resize, Sampling
from video2numpy.synth import write_video


def bare(encoder: Encoder, frames: np.ndarray, rounds: int = 3) -> float:
    """Frames/s of the model alone (preprocessing included), best of ``rounds``."""
    encoder.encode(frames[: encoder.batch_size])  # warm-up
    best = min(_timed(encoder.encode, frames) for _ in range(rounds))
    return len(frames) / best


def _timed(fn, *args) -> float:
    began = time.perf_counter()
    fn(*args)
    return time.perf_counter() - began


def precisions(checkpoint: str, frames: np.ndarray, batch_size: int) -> dict:
    """(b) The bare image tower in fp32 and bf16."""
    import torch

    from clip_video_encode.models.encoder import cpu_has_amx

    avx512_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    flags = f"AVX-512 BF16 {'yes' if avx512_bf16 else 'no'}, AMX {'yes' if cpu_has_amx() else 'no'}"
    print(f"(b) bare ViT-B-32 image tower, {torch.get_num_threads()} threads; this CPU: {flags}")
    speeds, outputs = {}, {}
    for precision in ("fp32", "bf16"):
        enc = Encoder(EncoderOptions("ViT-B-32", checkpoint, precision, "cpu", batch_size))
        # bf16 can be very slow on CPUs without native support: a smaller sample for it.
        sample = frames if precision == "fp32" else frames[: enc.batch_size]
        speeds[precision] = bare(enc, sample, rounds=2 if precision == "fp32" else 1)
        outputs[precision] = enc.encode(frames[:32]).astype(np.float32)
        print(f"  {precision}, batch {enc.batch_size}: {speeds[precision]:.1f} img/s")
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
        f" worker, {encoder.precision}, batch {encoder.batch_size}, best of {rounds}"
        " interleaved rounds"
    )
    print(
        f"  pipeline {best_pipe:.1f} frames/s vs bare model {best_bare:.1f} frames/s:"
        f" {best_pipe / best_bare:.2f}x (decoding and shard writing included)"
    )


def engines(
    checkpoint: str, frames: np.ndarray, batch_size: int | None, paths: list[str], rounds: int
) -> None:
    """(e) The bare tower per engine and precision, and the int8 pipeline against it."""
    import torch

    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("\n(e) onnxruntime is not installed: pip install 'clip-video-datasets[onnx]'")
        return
    print(
        f"\n(e) bare ViT-B-32 image tower per engine, {torch.get_num_threads()} threads,"
        f" {len(frames)} frames"
    )
    reference = None
    for engine, precision in (("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")):
        options = EncoderOptions(
            "ViT-B-32", checkpoint, precision, "cpu", batch_size or 16, engine=engine
        )
        enc = Encoder(options)
        out = enc.encode(frames[: enc.batch_size]).astype(np.float32)  # (the check, once)
        speed = bare(enc, frames, rounds=2)
        if reference is None:
            reference, base = out, speed
        cos = (
            (out * reference).sum(1)
            / np.linalg.norm(out, axis=1)
            / np.linalg.norm(reference, axis=1)
        )
        print(
            f"  {engine} {precision}, batch {enc.batch_size}: {speed:.1f} img/s"
            f" ({speed / base:.2f}x torch fp32), lowest cosine to torch fp32 {cos.min():.4f}"
        )
    pipeline_vs_bare(enc, frames, paths, rounds)


def against_clip_video_encode_130(checkpoint: str, workdir: str, python: str, rounds: int) -> None:
    """(c) Wall time and peak RSS of both tools on the same 600 frames, model loading included."""
    checkpoint = os.path.abspath(checkpoint)
    print("\n(c) end to end, 10 x 60 s 360p H.264 (GOP 250, textured) at 1 fps, ViT-B-32 fp32")
    if not os.path.exists(python):
        print(f"  clip-video-encode 1.3.0 not installed at {python}: run"
              " bench/setup_clip_video_encode_130.sh first")  # fmt: skip
        return
    first = os.path.join(workdir, "360p_60s_textured.mp4")
    if not os.path.exists(first):
        write_video(first, n_frames=1800, fps=30, width=640, height=360, gop=250, texture=True)
    paths = [os.path.abspath(first)]
    for i in range(1, 10):  # the same bitstream under 10 names: the decoders do all the work
        paths.append(os.path.abspath(os.path.join(workdir, f"360p_60s_textured_{i}.mp4")))
        if not os.path.exists(paths[-1]):
            shutil.copyfile(first, paths[-1])
    ours_cmd = [sys.executable, "-m", "clip_video_encode.cli", "--model", "ViT-B-32",
                "--pretrained", checkpoint, "--fps", "1", "--quiet"]  # fmt: skip
    # 1.3.0 samples by frame count only: every 30th frame of these 30 fps videos is 1 fps.
    theirs_code = (
        "import sys; from clip_video_encode import clip_video_encode;"
        " clip_video_encode(sys.argv[1], sys.argv[2], output_format='files', take_every_nth=30,"
        f" oc_model_name='ViT-B-32', pretrained={checkpoint!r})"
    )
    times: dict[str, list[float]] = {"ours": [], "1.3.0": []}
    try:
        import onnxruntime  # noqa: F401

        times["ours int8"] = []
        # The export and quantisation happen once per weights: done before the timed rounds.
        options = EncoderOptions(
            "ViT-B-32", checkpoint, "int8", "cpu", cache_dir=os.path.join(workdir, "cache")
        )
        Encoder(options)
    except ImportError:
        pass
    rss: dict[str, float] = {}
    for _ in range(rounds):
        for name in times:
            with tempfile.TemporaryDirectory() as out:
                listing = os.path.join(out, "videos.txt")
                with open(listing, "w") as f:
                    f.write("\n".join(paths) + "\n")
                dest = os.path.join(out, "dest")
                os.makedirs(dest)  # 1.3.0 does not create it
                if name == "ours":
                    argv = [*ours_cmd, listing, "--dest", dest]
                elif name == "ours int8":
                    argv = [
                        *ours_cmd,
                        "--precision",
                        "int8",
                        "--cache-dir",
                        os.path.join(workdir, "cache"),
                        listing,
                        "--dest",
                        dest,
                    ]
                else:
                    argv = [python, "-c", theirs_code, listing, dest]
                began = time.perf_counter()
                # Run from the scratch folder: from this checkout, `import clip_video_encode`
                # would find this project's package of the same name.
                peak, code = peak_rss_of(argv, cwd=out)
                times[name].append(time.perf_counter() - began)
                rss[name] = max(rss.get(name, 0.0), peak)
                frames = count_frames(dest)
                if code != 0 or frames != 600:
                    print(f"  {name}: exit {code}, {frames} frames written (expected 600)")
    ours, theirs = statistics.median(times["ours"]), statistics.median(times["1.3.0"])
    print(f"  this project:             {ours:5.1f} s (median of {rounds}), peak RSS"
          f" {rss['ours']:.0f} MB")  # fmt: skip
    print(f"  clip-video-encode 1.3.0:  {theirs:5.1f} s (median of {rounds}), peak RSS"
          f" {rss['1.3.0']:.0f} MB")  # fmt: skip
    print(f"  speed-up: {theirs / ours:.2f}x")
    if times.get("ours int8"):
        int8 = statistics.median(times["ours int8"])
        print(
            f"  this project, int8:       {int8:5.1f} s (median of {rounds}), peak RSS"
            f" {rss['ours int8']:.0f} MB; speed-up over 1.3.0: {theirs / int8:.2f}x"
        )


def peak_rss_of(argv: list[str], cwd: str | None = None) -> tuple[float, int]:
    """Peak RSS (MB) of the largest process the command ran, and its exit code. Each command
    runs under a fresh intermediate process so that one run's peak does not mask the next."""
    probe = (
        "import resource, subprocess, sys;"
        " run = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
        " print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, run.returncode);"
        " run.returncode and print(run.stderr[-2000:], file=sys.stderr)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, *argv], capture_output=True, text=True, cwd=cwd
    )
    kb, code = out.stdout.split()
    if int(code):
        print(f"  {argv[0]} failed:\n{out.stderr}")
    return int(kb) / 1024, int(code)


def count_frames(dest: str) -> int:
    """Frames in the embeddings a run wrote: our tars or 1.3.0's one .npy per video."""
    import io
    import tarfile

    total = 0
    for name in os.listdir(dest) if os.path.isdir(dest) else []:
        path = os.path.join(dest, name)
        if name.endswith(".npy"):
            total += len(np.load(path))
        elif name.endswith(".tar"):
            with tarfile.open(path) as tar:
                for member in tar:
                    if member.name.endswith(".npy"):
                        total += len(np.load(io.BytesIO(tar.extractfile(member).read())))
    return total


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
            rss, _ = peak_rss_of([*cli, path, "--dest", os.path.join(out, "ds")])
            took = time.perf_counter() - began
        print(f"  {minutes:2d}-minute video ({minutes * 60} frames): {rss:.0f} MB, {took:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=os.path.join(os.path.dirname(__file__), "_videos"))
    parser.add_argument("--batch-size", type=int, help="default: the encoder's choice")
    parser.add_argument("--sections", default="bacde", help="which of b, a, c, d, e (bacde)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds for (a), (c)")
    parser.add_argument(
        "--cve-python",
        default=os.path.join(os.path.dirname(__file__), "_cve130", "bin", "python"),
        help="python of the clip-video-encode 1.3.0 virtualenv",
    )
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
    paths = []
    for i in range(4):
        path = os.path.join(args.workdir, f"small_{i}.mp4")
        if not os.path.exists(path):
            write_video(path, n_frames=150, fps=30, width=160, height=120)
        paths.append(path)
    if "a" in args.sections:
        options = EncoderOptions("ViT-B-32", checkpoint, precision, "cpu", args.batch_size)
        encoder = Encoder(options)
        encoder.encode(frames[: encoder.batch_size])  # warm-up
        pipeline_vs_bare(encoder, frames, paths, args.rounds)
    if "c" in args.sections:
        against_clip_video_encode_130(checkpoint, args.workdir, args.cve_python, args.rounds)
    if "d" in args.sections:
        peak_memory(checkpoint, precision, args.workdir)
    if "e" in args.sections:
        engines(checkpoint, frames, args.batch_size, paths, args.rounds)


if __name__ == "__main__":
    main()
