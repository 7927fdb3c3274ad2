"""The Ray executor's actors: decoders (one CPU each) that fetch, decode and sample videos and
stream their frames out, and encoders (a GPU, or CPUs) that hold the model once and encode
batches. :class:`Actors` names the classes a run starts."""

from __future__ import annotations

import os
import shutil
import time
from typing import NamedTuple

import numpy as np

from video2numpy.scratch import make_scratch
from video2numpy.video import FrameOptions, Task, sample_video

from ..models.encoder import Encoder, EncoderLoadError, EncoderOptions


class DecodeWorker:
    """Fetches, decodes and samples videos (a Ray actor, one CPU)."""

    # Frames and records wait for more at most this long: encoders get frames soon, and the
    # driver sees progress (and stalls) per video even in a group of slow ones.
    flush_seconds: float = 0.25

    def __init__(self) -> None:
        # Downloads and tar members live here only while their video is decoded.
        # Named after this process, so that a later actor on the node removes it once this
        # one is gone (killed with its node's work, say).
        self.workdir = make_scratch("clip-video-encode-decode-")

    def pid(self) -> int:
        return os.getpid()

    def close(self) -> None:
        """Remove the scratch folder: the driver calls this before it kills the actor (a
        kill runs no clean-up), so a finished run leaves none behind."""
        shutil.rmtree(self.workdir, ignore_errors=True)

    def decode(self, videos: list[tuple[int, dict, int | None]], options: FrameOptions,
               heartbeat: float, *data: list):  # fmt: skip
        """Decodes ``videos``, ``(video, source, k)`` each, one after another; ``data[k]``
        lists the object references of the pieces of a file only the driver can read (a
        webdataset tar member), fetched and written one at a time. Yields
        in turn a header ``{"parts": [(video, n), ...], "shape": (H, W, 3), "records":
        [(video, record), ...]}`` and, when it has parts, their frames in one array. While a
        download goes on, a header (empty, or with what was gathered) every ``heartbeat``
        seconds tells the driver's stall watchdog so.

        Frames of consecutive videos are gathered up to ``options.chunk_frames``, so a group
        of short videos costs the driver a few items instead of three per video: the driver
        is the one process every video passes through. A record always comes after its
        video's frames."""
        import ray

        out = Gathered(options.chunk_frames)
        for video, source, k in videos:
            path = None
            if k is not None:
                suffix = os.path.splitext(source["location"])[1]
                path = os.path.join(self.workdir, f"member-{video}{suffix}")
                with open(path, "wb") as f:
                    for piece in data[k]:
                        f.write(ray.get(piece))
                source = {**source, "location": path}
            try:
                task = Task.from_source(video, source)
                for chunk in sample_video(task, options, self.workdir, heartbeat):
                    if chunk is None:  # downloading
                        yield from out.beat()
                        continue
                    if len(chunk.frames):
                        yield from out.add(video, chunk.frames)
                    if chunk.record is not None:
                        out.records.append((video, chunk.record))
                        if time.monotonic() - out.since > self.flush_seconds:
                            yield from out.flush()
            finally:
                if path:
                    os.remove(path)
        yield from out.flush()


class Gathered:
    """Frames of consecutive videos and their records, on their way out of a decoder."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[tuple[int, int]] = []
        self.arrays: list[np.ndarray] = []
        self.records: list[tuple[int, dict]] = []
        self.n = 0
        self.since = time.monotonic()

    def add(self, video: int, frames: np.ndarray):
        if self.arrays and self.arrays[0].shape[1:] != frames.shape[1:]:
            yield from self.flush()  # one frame shape per item (--resize-mode native)
        self.parts.append((video, len(frames)))
        self.arrays.append(frames)
        self.n += len(frames)
        if self.n >= self.limit:
            yield from self.flush()

    def beat(self):
        """An item that shows progress: what was gathered, or an empty header."""
        if self.parts or self.records:
            yield from self.flush()
        else:
            yield {"parts": [], "shape": (), "records": []}

    def flush(self):
        if self.parts or self.records:
            shape = self.arrays[0].shape[1:] if self.arrays else ()
            yield {"parts": self.parts, "shape": shape, "records": self.records}
            if self.arrays:
                yield self.arrays[0] if len(self.arrays) == 1 else np.concatenate(self.arrays)
        self.parts, self.arrays, self.records, self.n = [], [], [], 0
        self.since = time.monotonic()


class EncodeWorker:
    """Holds the model once and encodes batches of frames (a Ray actor, one GPU or CPUs)."""

    def __init__(self, options: EncoderOptions, threads: int | None) -> None:
        import torch

        # Ray limits an actor's threads to its CPU reservation (one, or none at all): a CPU
        # encoder would run on one core. Use the node's cores, as the local executor does.
        torch.set_num_threads(threads or os.cpu_count() or 1)
        try:
            self.encoder = Encoder(options)
        except ValueError as exc:  # an option this actor's machine cannot use (--device)
            raise EncoderLoadError(str(exc)) from None  # the driver's usage error, as locally

    def pid(self) -> int:
        return os.getpid()

    def describe(self) -> dict:
        return self.encoder.describe()

    def batch_size(self) -> int:
        return self.encoder.batch_size

    def fidelity(self) -> dict | None:
        return self.encoder.fidelity

    def encode(self, pieces: list[tuple[int, int, int]], *frames: np.ndarray) -> np.ndarray:
        """One batch: ``pieces`` are ``(k, lo, n)``, frames ``lo .. lo + n`` of
        ``frames[k]``, in batch order (objects in the store are read without a copy)."""
        parts = [frames[k][lo : lo + n] for k, lo, n in pieces]
        return self.encoder.encode(parts[0] if len(parts) == 1 else np.concatenate(parts))

    def encode_text(self, text: str) -> np.ndarray:
        return self.encoder.encode_text([text])[0]


class Actors(NamedTuple):
    """The actor classes a run starts. Benchmarks of the driver alone swap in actors that
    replay frames and embeddings (``bench/driver_ceiling.py``); runs use these."""

    decode: type = DecodeWorker
    encode: type = EncodeWorker


def _load_error(exc: Exception) -> Exception:
    from ..models.weights import EncoderLoadError

    cause = getattr(exc, "cause", None) or exc
    text = str(cause)
    if isinstance(cause, EncoderLoadError) or "EncoderLoadError" in text:
        return EncoderLoadError(text.split("EncoderLoadError:")[-1].strip())
    return RuntimeError(f"the encoder actor could not start: {text}")
