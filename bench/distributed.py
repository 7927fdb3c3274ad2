"""The Ray executor on this machine: decode actors 1 vs 2, Ray vs the local executor, and the
object store's peak.

Run: python bench/distributed.py [--videos 12] [--rounds 2]

Needs ``ray[default]`` (for the object-store statistics). The job leans on decoding (360p
H.264 with 250-frame GOPs, 2 frames per video, a ViT-B-32 with random weights from one
checkpoint file), so that decode scaling shows, and is long enough for actor start-up (a
fresh process importing torch and loading the model) to matter little. Rounds are interleaved
and the best of each configuration kept: this machine's speed drifts.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import tempfile
import threading
import time

from clip_video_encode.execute.local import encode_dataset
from clip_video_encode.execute.ray_executor import RayOptions, encode_dataset_ray
from clip_video_encode.models.encoder import EncoderOptions
from clip_video_encode.plan.job import EncodeJob
from video2numpy import FrameOptions, Sampling
from video2numpy.synth import write_video


class StorePeak:
    """Polls the object store's usage (Ray's memory summary) and the decode actors' memory
    (largest RSS, and RSS less shared pages: the object store's mapped pages are shared)
    while a run goes on."""

    def __init__(self) -> None:
        self.peak_mib = 0.0
        self.unavailable: str | None = None  # why the store cannot be read (no ray[default])
        self.decoder_rss = self.decoder_private = 0.0  # MiB
        self._decoders = threading.Thread(target=self._poll_decoders, daemon=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self):
        self._thread.start()
        self._decoders.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._decoders.join()

    def _poll_decoders(self) -> None:
        import psutil

        while not self._stop.is_set():
            for process in psutil.process_iter(["cmdline"]):
                if " ".join(process.info["cmdline"] or []).startswith("ray::DecodeWorker"):
                    try:
                        info = process.memory_info()
                    except psutil.Error:
                        continue
                    self.decoder_rss = max(self.decoder_rss, info.rss / 2**20)
                    self.decoder_private = max(self.decoder_private,
                                               (info.rss - info.shared) / 2**20)  # fmt: skip
            self._stop.wait(1.0)

    def _poll(self) -> None:
        from ray._private.internal_api import memory_summary

        while not self._stop.is_set():
            try:
                text = memory_summary(stats_only=True)
                match = re.search(r"Plasma memory usage ([\d.]+) MiB", text)
                if match:
                    self.peak_mib = max(self.peak_mib, float(match.group(1)))
            except ImportError as exc:  # memory_summary needs ray[default]'s grpc
                self.unavailable = f"n/a ({exc})"
                return
            except Exception:
                pass
            self._stop.wait(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=os.path.join(os.path.dirname(__file__), "_videos"))
    parser.add_argument("--videos", type=int, default=120)
    parser.add_argument("--frames", type=int, default=2, help="frames per video")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    import open_clip
    import ray
    import torch

    os.makedirs(args.workdir, exist_ok=True)
    checkpoint = os.path.join(args.workdir, "vit-b-32-random.pt")
    if not os.path.exists(checkpoint):
        torch.manual_seed(0)
        torch.save(open_clip.create_model("ViT-B-32").state_dict(), checkpoint)
    first = os.path.join(args.workdir, "360p_30s_textured.mp4")
    if not os.path.exists(first):
        write_video(first, n_frames=900, fps=30, width=640, height=360, gop=250, texture=True)
    scratch = tempfile.mkdtemp()
    paths = []
    for i in range(args.videos):
        paths.append(os.path.join(scratch, f"v{i}.mp4"))
        shutil.copyfile(first, paths[-1])
    listing = os.path.join(scratch, "videos.txt")
    with open(listing, "w") as f:
        f.write("\n".join(paths) + "\n")
    frames = FrameOptions(Sampling(num_frames=args.frames))
    encoder = EncoderOptions("ViT-B-32", checkpoint, "fp32", "cpu")

    ray.init(num_cpus=os.cpu_count(), log_to_driver=False)
    configs = {
        "ray, 1 decode actor": RayOptions(decoders=1, encoder_cpus=0),
        "ray, 2 decode actors": RayOptions(decoders=2, encoder_cpus=0),
        "local, 2 decode workers": None,
    }
    best = {name: 0.0 for name in configs}
    store = {name: 0.0 for name in configs}
    decoder = [0.0, 0.0]  # the largest decode actor's RSS and private MiB
    for _ in range(args.rounds):
        for name, options in configs.items():
            dest = tempfile.mkdtemp()
            job = EncodeJob(listing, os.path.join(dest, "ds"), frames, encoder, workers=2)
            began = time.perf_counter()
            if options is None:
                summary = encode_dataset(job, progress=False)
            else:
                with StorePeak() as peak:
                    summary = encode_dataset_ray(job, options, progress=False)
                store[name] = peak.unavailable or max(store[name], peak.peak_mib)
                decoder[0] = max(decoder[0], peak.decoder_rss)
                decoder[1] = max(decoder[1], peak.decoder_private)
            seconds = time.perf_counter() - began
            assert summary["successes"] == args.videos, summary
            best[name] = max(best[name], args.videos / seconds)
            shutil.rmtree(dest)
    ray.shutdown()
    shutil.rmtree(scratch)

    print(
        f"{args.videos} x 30 s 360p H.264 (GOP 250, textured), {args.frames} frames each,"
        " ViT-B-32 fp32,"
        f" {os.cpu_count()} CPUs, model loading included, best of {args.rounds} interleaved"
        " rounds"
    )
    for name, rate in best.items():
        size = store[name] if isinstance(store[name], str) else f"{store[name]:.0f} MiB"
        peak = f", object store peak {size}" if configs[name] else ""
        print(f"  {name:26s} {rate:.2f} videos/s{peak}")
    one, two = best["ray, 1 decode actor"], best["ray, 2 decode actors"]
    local = best["local, 2 decode workers"]
    print(f"  2 vs 1 decode actors: {two / one:.2f}x; Ray (2 actors) / local: {two / local:.2f}")
    print(f"  largest decode actor: {decoder[0]:.0f} MiB RSS, {decoder[1]:.0f} MiB not shared")


if __name__ == "__main__":
    main()
