"""What one Ray driver sustains: videos/s and MB/s of embeddings into committed shards.

Run: python bench/driver_ceiling.py [--videos 4000] [--frames 10 60] [--store local s3]

Decoding and encoding are replaced by REPLAY actors: a replay decoder yields one real video's
pre-decoded frames and decode record for every row, a replay encoder returns pre-computed
embeddings of a real ViT-B-32 (random weights) for every batch, both at once. So the run
measures what the executor itself costs: scheduling, moving frame refs, assembling and
committing shards. The production actors are not touched; the replay classes exist only here
and go in through ``encode_dataset_ray(..., actors=...)``.

Reported per configuration: videos/s and MB/s of float16 embeddings committed, the driver
process's CPU share (1.0 = one core busy all the time; near 1.0 means the driver is the
ceiling), its CPU time per video, and its peak RSS. ``--store s3`` writes to a moto S3 server
in its own process. The actors share this machine's cores with the driver, so on a small
machine the driver's CPU time per video is the figure that carries over to a cluster: one
driver core sustains 1 / (CPU time per video).
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import psutil

from clip_video_encode.execute.ray_actors import Actors, DecodeWorker, EncodeWorker, Gathered
from clip_video_encode.execute.ray_executor import RayOptions, encode_dataset_ray
from clip_video_encode.models.encoder import Encoder, EncoderOptions
from clip_video_encode.plan.job import EncodeJob
from video2numpy import FrameOptions, Sampling
from video2numpy.video import Task, sample_video


def replay_actors(frames_ref, record: dict, embeddings_ref, description: dict) -> Actors:
    """Actor classes that replay one video's frames and record, and its embeddings."""
    import ray

    class ReplayDecodeWorker(DecodeWorker):
        def __init__(self) -> None:
            super().__init__()
            self.frames = ray.get(frames_ref)

        def decode(self, videos, options, heartbeat, *data):
            """The production actor's protocol, with every video's frames replayed."""
            out = Gathered(options.chunk_frames)
            for video, _, _ in videos:
                yield from out.add(video, self.frames)
                out.records.append((video, record))
            yield from out.flush()

    class ReplayEncodeWorker(EncodeWorker):
        def __init__(self, options, threads) -> None:
            self.embeddings = ray.get(embeddings_ref)

        def describe(self) -> dict:
            return description

        def batch_size(self) -> int:
            return 256  # a GPU encoder's batch

        def fidelity(self) -> None:
            return None

        def encode(self, pieces, *frames: np.ndarray) -> np.ndarray:
            n = sum(n for _, _, n in pieces)
            reps = -(-n // len(self.embeddings))
            return np.tile(self.embeddings, (reps, 1))[:n]

    return Actors(ReplayDecodeWorker, ReplayEncodeWorker)


class DriverMeter:
    """CPU time and peak RSS of the driver's machine's share of a run: this process (the
    driver) and its pipeline actors (``ray::Pipeline``), while a run goes on."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak_rss = self.peak_private = 0
        self.cpu_of: dict[int, float] = {}  # pipeline pid -> its CPU time when last seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self):
        times = self.process.cpu_times()
        self.cpu0, self.wall0 = times.user + times.system, time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        times = self.process.cpu_times()
        self.cpu = times.user + times.system - self.cpu0 + sum(self.cpu_of.values())
        self.wall = time.perf_counter() - self.wall0

    def _poll(self) -> None:
        pipelines: dict[int, psutil.Process] = {}
        looked = 0.0
        while not self._stop.is_set():
            if time.monotonic() - looked > 1.0:  # scanning every process costs the driver
                looked = time.monotonic()
                for process in psutil.process_iter(["cmdline"]):
                    if " ".join(process.info["cmdline"] or []).startswith("ray::Pipeline"):
                        pipelines.setdefault(process.pid, process)
            info = self.process.memory_info()
            rss, private = info.rss, info.rss - info.shared
            for process in list(pipelines.values()):
                try:
                    times, info = process.cpu_times(), process.memory_info()
                except psutil.Error:
                    del pipelines[process.pid]
                    continue
                self.cpu_of[process.pid] = times.user + times.system
                rss, private = rss + info.rss, private + info.rss - info.shared
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_private = max(self.peak_private, private)
            self._stop.wait(0.2)


def moto_server() -> tuple[subprocess.Popen, str]:
    """A moto S3 server in its own process (its CPU is not the driver's)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing",
                      AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")  # fmt: skip
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    s3fs.S3FileSystem(endpoint_url=endpoint).mkdir("driver-bench")
    return server, endpoint


def real_video(workdir: str, n_frames: int, size: int):
    """One synthetic video decoded for real: its sampled frames and record."""
    from video2numpy.resize import Resize
    from video2numpy.synth import write_video

    path = os.path.join(workdir, f"clip_{n_frames}.mp4")
    write_video(path, n_frames=n_frames, fps=n_frames / 10, width=320, height=240)
    options = FrameOptions(Sampling(fps=n_frames / 10), Resize(size, "crop"))
    chunks = list(sample_video(Task(0, path), options, workdir))
    frames = np.concatenate([c.frames for c in chunks if len(c.frames)])
    record = next(c.record for c in chunks if c.record is not None)
    assert record["n_frames"] == n_frames, record
    return frames, record


def real_embeddings(frames: np.ndarray) -> tuple[np.ndarray, dict]:
    """A ViT-B-32's embeddings of ``frames`` (random weights), and its description."""
    encoder = Encoder(EncoderOptions("ViT-B-32", "none", "fp32", "cpu", batch_size=64))
    description = {**encoder.describe(), "device": "cuda", "pretrained": "replayed"}
    return encoder.encode(frames), description


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=20000)
    parser.add_argument("--frames", type=int, nargs="+", default=[10, 60])
    parser.add_argument("--store", nargs="+", default=["local", "s3"], choices=["local", "s3"])
    parser.add_argument("--decoders", type=int, default=4)
    parser.add_argument("--encoders", type=int, default=2)
    parser.add_argument("--pipelines", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--samples-per-shard", type=int, default=1000)
    parser.add_argument("--size", type=int, default=224, help="frame side, pixels")
    args = parser.parse_args()
    import ray

    work = tempfile.mkdtemp(prefix="driver-bench-")
    listing = os.path.join(work, "videos.txt")
    with open(listing, "w") as f:  # replayed: the paths are never opened
        f.writelines(f"/videos/{i:08d}.mp4\n" for i in range(args.videos))
    server = None
    if "s3" in args.store:
        server, _ = moto_server()
    ray.init(num_cpus=args.decoders + 1, log_to_driver=False, configure_logging=False)
    # The model runs in a task of its own: the driver's RSS is the executor's, not torch's.
    encode_once = ray.remote(num_cpus=0)(real_embeddings)
    rows = []
    try:
        for n_frames in args.frames:
            frames, record = real_video(work, n_frames, args.size)
            embeddings, description = ray.get(encode_once.remote(frames))
            actors = replay_actors(ray.put(frames), record, ray.put(embeddings), description)
            for store, pipelines in itertools.product(args.store, args.pipelines):
                name = f"{n_frames}_{pipelines}"
                dest = (f"s3://driver-bench/{name}" if store == "s3"
                        else os.path.join(work, f"out_{name}"))  # fmt: skip
                job = EncodeJob(
                    listing, dest, FrameOptions(Sampling(fps=n_frames / 10)),
                    EncoderOptions("ViT-B-32", "none", "fp32", "cpu"),
                    samples_per_shard=args.samples_per_shard, size_from_model=False,
                )  # fmt: skip
                options = RayOptions(decoders=args.decoders, encoders=args.encoders,
                                     encoder_cpus=0, pipelines=pipelines)  # fmt: skip
                with DriverMeter() as meter:
                    summary = encode_dataset_ray(job, options, progress=False, actors=actors)
                assert summary["successes"] == args.videos, summary
                mb = args.videos * n_frames * embeddings.shape[1] * 2 / 1e6
                rows.append((n_frames, store, pipelines, args.videos / meter.wall, mb / meter.wall,
                             meter.cpu / meter.wall, meter.cpu / args.videos * 1e6,
                             meter.peak_rss / 2**20, meter.peak_private / 2**20))  # fmt: skip
    finally:
        ray.shutdown()
        if server is not None:
            server.terminate()
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"Ray driver ceiling: {args.videos} videos, REPLAY decoders x{args.decoders} and"
        f" encoder x{args.encoders} (pre-decoded {args.size}px frames, pre-computed ViT-B-32"
        f" embeddings), {args.samples_per_shard} samples per shard, {os.cpu_count()} CPUs"
    )
    print(
        "driver CPU, CPU us/video and memory: the driver process and its pipelines together;"
        " RSS counts the object store's pages they mapped, private does not"
    )
    print(f"{'frames':>6} {'store':>5} {'pipelines':>9} {'videos/s':>9} {'MB/s':>7}"
          f" {'driver CPU':>10} {'CPU us/video':>12} {'RSS MiB':>8}"
          f" {'private MiB':>11}")  # fmt: skip
    for n, store, pipelines, vps, mbs, share, us, rss, private in rows:
        print(f"{n:>6} {store:>5} {pipelines:>9} {vps:>9.0f} {mbs:>7.1f} {share:>10.2f}"
              f" {us:>12.0f} {rss:>8.0f} {private:>11.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
