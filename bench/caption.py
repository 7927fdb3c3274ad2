"""Captioning throughput and peak memory of SpaceTimeGPT's architecture on this machine.

Run: python bench/caption.py [--batch-sizes 1,2,4,8] [--batches 2] [--videos 8]
                             [--workdir /tmp/clip-video-caption-bench]

Random weights of SpaceTimeGPT's shape (``clip_video_encode.caption.synthetic``,
``size="spacetimegpt"``: TimeSformer-base, 8 frames of 224 px; GPT-2 124M with its
50,257-token vocabulary), saved once and loaded by path through ``clip-video-caption``'s own
loader, beam 8, lengths 10 to 20 tokens, fp32 on the CPU.

1. Model alone, per batch size, each in a fresh process: clips per second of
   ``Captioner.generate`` on preprocessed clips (after one warm-up batch), the encoder's share
   of that time (TimeSformer alone on the same batch), and the process's peak resident memory
   (``ru_maxrss``). A random model never emits end-of-sequence, so every
   beam runs the full 20 tokens: the real model, which stops when its beams end, is at most
   this slow per clip.
2. End to end: ``clip-video-caption`` on ``--videos`` synthetic 10-second 640x360 videos
   (decode, the image processor, generation, the table), at the batch size given first
   among the fastest of part 1, wall clock and peak memory of the whole process.
3. Sampling alone: the CPU's part of a clip (fetch, decode 8 frames at their native size,
   the image processor) in one thread, over the 4 s windows of the same videos: what a GPU
   run asks of each CPU core per clip.

``--device cuda`` measures parts 1 and 2 on a GPU in fp16 (and its peak allocated memory).

Prints one JSON object per measurement and a summary table.

``python bench/caption.py tokenizers PRED --refs REFS [--encoding cp1252]`` measures the
pure-Python tokenizer against the PTB one on a real caption set: the captions each tokenises
differently, and every metric of ``clip-video-caption eval`` computed both ways. docs/caption.md
used SpaceTimeGPT's VATEX public-test references (``dataset/vatex_test.csv`` at commit
80fa098 of github.com/Neleac/SpaceTimeGPT, cp1252 text) and its generated captions
(``result/generated_captions.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def model_only(folder: str, batch: int, batches: int, device: str) -> dict:
    import numpy as np
    import torch

    from clip_video_encode.caption.model import Captioner, CaptionerOptions

    began = time.perf_counter()
    captioner = Captioner(CaptionerOptions(model=folder, device=device))
    load = time.perf_counter() - began
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (360, 640, 3), dtype=np.uint8) for _ in range(8)]
    clip = captioner.pixels(frames)
    pixels = np.stack([clip] * batch)
    captioner.generate(pixels)  # warm-up
    began = time.perf_counter()
    for _ in range(batches):
        captioner.generate(pixels)
    seconds = time.perf_counter() - began
    # The encoder's share: TimeSformer alone on the same batch.
    tensor = torch.from_numpy(pixels).to(captioner.device, captioner.dtype)
    began = time.perf_counter()
    with torch.inference_mode():
        for _ in range(batches):
            captioner.model.encoder(pixel_values=tensor)
        if captioner.device.startswith("cuda"):
            torch.cuda.synchronize()
    encoder = time.perf_counter() - began
    gpu_peak = (torch.cuda.max_memory_allocated() / 2**20) if captioner.device.startswith(
        "cuda") else None  # fmt: skip
    return {
        "part": "model",
        "batch_size": batch,
        "clips_per_second": round(batch * batches / seconds, 4),
        "seconds_per_clip": round(seconds / (batch * batches), 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "encoder_share": round(encoder / seconds, 3),
        "device": captioner.device,
        "precision": captioner.precision,
        "gpu_peak_mib": None if gpu_peak is None else round(gpu_peak),
        "load_seconds": round(load, 1),
        "torch_threads": torch.get_num_threads(),
        "load_average": round(os.getloadavg()[0], 2),
    }


def _videos(workdir: str, videos: int) -> list[str]:
    from video2numpy.synth import write_video

    paths = []
    for i in range(videos):
        path = os.path.join(workdir, f"video{i}.mp4")
        if not os.path.exists(path):
            write_video(path, n_frames=300, fps=30, width=640, height=360, texture=True)
        paths.append(path)
    return paths


def sampling(folder: str, workdir: str, videos: int) -> dict:
    """The CPU side of a clip, in one thread: fetch, decode 8 frames at their native size
    (video2numpy's sampler), the image processor. What a GPU run needs per clip from the
    CPU cores, beside the model."""
    from transformers import AutoImageProcessor

    from clip_video_encode.caption.frames import ClipPlan, sample_clips

    processor = AutoImageProcessor.from_pretrained(folder)

    def pixels(frames):
        return processor(list(frames), return_tensors="np")["pixel_values"][0]

    paths = _videos(workdir, videos)
    began = time.perf_counter()
    clips = 0
    for path in paths:
        for clip in sample_clips(path, None, None, ClipPlan(per="window"), workdir, pixels):
            clips += clip.pixels is not None
    seconds = time.perf_counter() - began
    return {"part": "sampling", "batch_size": 0, "clips": clips,
            "clips_per_second": round(clips / seconds, 3),
            "seconds_per_clip": round(seconds / clips, 3),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "note": "one thread; 4 s windows of 10 s 640x360 videos"}  # fmt: skip


def end_to_end(folder: str, workdir: str, videos: int, batch: int, device: str) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = _videos(workdir, videos)
    table = os.path.join(workdir, "videos.parquet")
    pq.write_table(pa.table({"location": paths}), table)
    out = os.path.join(workdir, f"captions-{time.time_ns()}.parquet")
    argv = [sys.executable, "-m", "clip_video_encode.caption.cli", table, "--out", out,
            "--model", folder, "--batch-size", str(batch), "--device", device,
            "--quiet"]  # fmt: skip
    # A parent of its own, so that the children's peak is this run's alone.
    wrapper = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True);"
               " print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")  # fmt: skip
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", wrapper, *argv], check=True,
                          capture_output=True, text=True)  # fmt: skip
    seconds = time.perf_counter() - began
    peak = int(done.stdout.split()[-1]) / 1024
    return {
        "part": "end_to_end",
        "batch_size": batch,
        "videos": videos,
        "seconds": round(seconds, 1),
        "clips_per_second": round(videos / seconds, 4),
        "peak_rss_mib": round(peak),
        "note": "includes starting Python, importing transformers and loading the model",
    }


def tokenizers(pred: str, refs: str, encoding: str | None) -> None:
    from clip_video_encode.caption.evaluate import EvalOptions, evaluate
    from clip_video_encode.caption.formats import read_captions
    from clip_video_encode.caption.tokenize import ptb_tokenize, python_tokenize

    sides = ((refs, "references", encoding), (pred, "predictions", None))
    captions = [c for path, role, enc in sides
                for v in read_captions(path, role, encoding=enc).values() for c in v]  # fmt: skip
    began = time.perf_counter()
    ptb = ptb_tokenize(captions)
    ptb_seconds = time.perf_counter() - began
    began = time.perf_counter()
    python = [python_tokenize(c) for c in captions]
    python_seconds = time.perf_counter() - began
    differ = [(c, a, b) for c, a, b in zip(captions, ptb, python, strict=True) if a != b]
    print(json.dumps({"captions": len(captions), "tokenised_differently": len(differ),
                      "ptb_seconds": round(ptb_seconds, 1),
                      "python_seconds": round(python_seconds, 1)}))  # fmt: skip
    for caption, a, b in differ[:20]:
        print(json.dumps({"caption": caption, "ptb": a, "python": b}, ensure_ascii=False))
    scores = {}
    for name in ("ptb", "python"):
        options = EvalOptions(refs_encoding=encoding, tokenizer=name, chance=False,
                              missing="skip")  # fmt: skip
        scores[name] = evaluate(pred, refs, options)["corpus"]
        print(json.dumps({"tokenizer": name, **scores[name]}))
    gap = {m: scores["python"][m] - scores["ptb"][m] for m in scores["ptb"]}
    print(json.dumps({"python_minus_ptb": gap}))


def main() -> None:
    if sys.argv[1:2] == ["tokenizers"]:
        parser = argparse.ArgumentParser(prog="bench/caption.py tokenizers")
        parser.add_argument("pred")
        parser.add_argument("--refs", required=True)
        parser.add_argument("--encoding", help="of the references")
        args = parser.parse_args(sys.argv[2:])
        tokenizers(args.pred, args.refs, args.encoding)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-sizes", default="1,2,4,8")
    parser.add_argument("--batches", type=int, default=2, help="timed batches per size")
    parser.add_argument("--videos", type=int, default=8, help="0: no end-to-end part")
    parser.add_argument("--workdir", default="/tmp/clip-video-caption-bench")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (fp16) where lent")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child: one batch size
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    folder = os.path.join(args.workdir, "spacetimegpt-random")
    if args.one is not None:
        print(json.dumps(model_only(folder, args.one, args.batches, args.device)), flush=True)
        return
    if not os.path.exists(os.path.join(folder, "model.safetensors")):
        from clip_video_encode.caption.synthetic import save_random_captioner

        save_random_captioner(folder, size="spacetimegpt")
    results = []
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        argv = [sys.executable, __file__, "--one", str(batch), "--batches", str(args.batches),
                "--workdir", args.workdir, "--device", args.device]  # fmt: skip
        line = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(line.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    if args.videos:
        best = max(results, key=lambda r: r["clips_per_second"])["batch_size"]
        results.append(end_to_end(folder, args.workdir, args.videos, best, args.device))
        print(json.dumps(results[-1]), flush=True)
        results.append(sampling(folder, args.workdir, args.videos))
        print(json.dumps(results[-1]), flush=True)
    print(f"\n{'part':<11}{'batch':>6}{'clips/s':>9}{'s/clip':>8}{'peak MiB':>10}")
    for r in results:
        per = r.get("seconds_per_clip", round(1 / r["clips_per_second"], 2))
        print(f"{r['part']:<11}{r['batch_size']:>6}{r['clips_per_second']:>9.3f}{per:>8}"
              f"{r['peak_rss_mib']:>10}")  # fmt: skip
    print(f"CPU: {os.cpu_count()} cores; torch threads {results[0]['torch_threads']}; load"
          f" average {results[0]['load_average']} during the first measurement")  # fmt: skip


if __name__ == "__main__":
    main()
