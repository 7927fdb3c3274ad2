"""The local executor: decode in worker processes, encode in one thread, write shards.

Decoding runs in video2numpy's worker pool; the encoder runs in a thread of its own (torch
releases the GIL), so this thread keeps taking frames from the decoders while a batch is
being encoded. Which frames share a batch follows :mod:`..plan.batching`'s rule (short videos of a
group share batches), never the decoders' timing. Both hand-offs are bounded queues: a slow
encoder makes the decoders wait, never fills memory.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from tqdm import tqdm

from video2numpy.reader import stream_videos
from video2numpy.status import SUCCESS
from video2numpy.video import FrameOptions

from ..commit.assembly import Assembly
from ..commit.ledger import Ledger
from ..models.encoder import Encoder, EncoderFidelityError
from ..plan.batching import Batcher, Piece
from ..plan.job import EncodeJob, with_choices_of_dest
from ..plan.run_file import Plan
from ..plan.source import read_input
from .run import run_job


@dataclass
class _Video:
    parts: dict[int, np.ndarray] = field(default_factory=dict)  # first frame -> embeddings
    frames: int = 0  # frames sent to the encoder
    encoded: int = 0  # frames whose embeddings came back
    record: dict | None = None
    error: str | None = None


def encode_dataset(
    job: EncodeJob, encoder: Encoder | None = None, progress: bool | None = None
) -> dict:
    """Run ``job`` with the local executor; returns the run's summary (see ``run_job``)."""
    read = read_input(job)  # first: unusable input costs no model loading and no dest
    job = with_choices_of_dest(job)
    return run_job(job, read, LocalExecutor(job, encoder, progress))


class LocalExecutor:
    """Decoding in video2numpy's worker pool, encoding in a thread of this process."""

    def __init__(self, job: EncodeJob, encoder: Encoder | None, progress: bool | None) -> None:
        self.job, self.encoder, self.progress = job, encoder, progress

    def start(self) -> dict:
        self.encoder = self.encoder or Encoder(self.job.encoder)  # a bad model: no empty dest
        return self.encoder.describe()

    def execute(self, plan: Plan, ledger: Ledger, lease=None) -> None:
        encoder = self.encoder
        assembly = Assembly(self.job, plan, ledger, encoder.embed_dim, encoder.similarity)
        _encode(self.job, encoder, plan, assembly, self.progress)

    def fidelity(self) -> dict | None:
        return None if self.encoder is None else self.encoder.fidelity

    def stop(self) -> None:
        pass

    def report(self) -> dict:
        return {}


def _encode(job: EncodeJob, encoder: Encoder, plan: Plan, assembly: Assembly, progress) -> None:
    """Decode the videos ``assembly`` hands out, encode their frames in the batches
    :class:`Batcher` forms, hand back the results."""
    videos: dict[int, _Video] = {}
    pipeline = _EncodeThread(encoder.encode)
    batcher = Batcher(encoder.batch_size)
    waiting: set[int] = set()  # decoded videos whose frames are still being encoded

    def collect() -> None:
        for i, offset, n, result in pipeline.results():
            video = videos.get(i)
            if video is None:
                continue  # a video that failed after some of its frames went out
            video.encoded += n
            if isinstance(result, Exception):
                video.error = f"encoding failed: {type(result).__name__}: {result}"
            else:
                video.parts[offset] = result
        for i in [i for i in waiting if videos[i].encoded >= videos[i].frames]:
            waiting.discard(i)
            video = videos.pop(i)
            ok = video.record["status"] == SUCCESS and video.parts and video.error is None
            embeddings = np.concatenate([video.parts[k] for k in sorted(video.parts)]) if ok \
                else None  # fmt: skip
            assembly.finish(i, video.record, embeddings, video.error)

    def registered(sources):
        """The sources, each registered with the batcher as it is handed out."""
        for i, source in enumerate(sources):
            slot = assembly.slots[i]
            pipeline.put(batcher.register(i, slot.shard, slot.index))
            yield source
        pipeline.put(batcher.close())

    bar = tqdm(total=plan.videos(), unit="video", disable=_quiet(progress), desc="encode")
    frames = chunked_for(plan.frames, encoder.batch_size)
    stream = stream_videos(registered(assembly.sources()), frames, job.workers, job.timeout)
    try:
        for chunk in stream:
            video = videos.setdefault(chunk.index, _Video())
            if len(chunk.frames):
                video.frames += len(chunk.frames)
                pipeline.put(batcher.add(chunk.index, chunk.frames, 0, len(chunk.frames),
                                         chunk.frames.shape[1:]))  # fmt: skip
            if chunk.record is not None:
                video.record = chunk.record
                bar.update(1)
                ok = chunk.record["status"] == SUCCESS
                pipeline.put(batcher.end(chunk.index, ok))
                if not ok:
                    video.encoded = video.frames  # nothing to wait for
                waiting.add(chunk.index)
            collect()
        while waiting:
            pipeline.wait()
            collect()
    except BaseException:
        assembly.abort()
        raise
    finally:
        stream.close()  # stops the workers and removes their scratch folders, now
        pipeline.stop()
        bar.close()
    assembly.close()


def chunked_for(options: FrameOptions, batch_size: int) -> FrameOptions:
    """Decode workers send chunks of at most one encoder batch: a larger chunk only waits
    here, and every chunk in flight is held several times over (decoded, pickled, received).
    On a CPU (batches of 16), chunks of 64 frames peaked 60 MB higher on a 10-minute video at
    the same speed (1494 vs 1433 MiB, the process tree sampled by hand). Chunks never change
    which frames come out."""
    return replace(options, chunk_frames=max(1, min(options.chunk_frames, batch_size)))


def _quiet(progress: bool | None) -> bool | None:
    return None if progress is None else not progress


class EncoderThreadDied(RuntimeError):
    """The encoder thread stopped on an error outside any batch's own handling."""


class _EncodeThread:
    """Encodes batches in a background thread, in the order they are put.

    An error that stops the thread itself is raised in the caller's thread, never left to
    hang it.
    """

    def __init__(self, encode: Callable[[np.ndarray], np.ndarray]) -> None:
        self._encode = encode
        self._todo: queue.Queue = queue.Queue(maxsize=2)
        self._done: queue.Queue = queue.Queue()
        self._in_flight = 0
        self._died: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, daemon=True, name="encoder")
        self._thread.start()

    def put(self, batches: list[list[Piece]]) -> None:
        for batch in batches:
            self._in_flight += 1
            while True:  # blocks while two batches wait (backpressure), unless the thread died
                self._check()
                try:
                    self._todo.put(batch, timeout=0.5)
                    break
                except queue.Full:
                    continue

    def _check(self) -> None:
        if isinstance(self._died, EncoderFidelityError):
            raise self._died
        if self._died is not None:
            raise EncoderThreadDied(
                f"the encoder thread stopped: {type(self._died).__name__}: {self._died}"
            ) from self._died

    def results(self):
        """Finished pieces as ``(video, offset, frames, embeddings or exception)``; never
        blocks."""
        self._check()
        while True:
            try:
                batch = self._done.get_nowait()
            except queue.Empty:
                return
            self._in_flight -= 1
            yield from batch

    def wait(self) -> None:
        """Block until at least one batch has finished (if any is in flight)."""
        while self._in_flight:
            self._check()
            try:
                batch = self._done.get(timeout=0.5)
            except queue.Empty:
                continue
            self._done.put(batch)
            return

    def stop(self) -> None:
        if self._thread.is_alive():
            self._todo.put(None)
            self._thread.join(timeout=60)

    def _loop(self) -> None:
        try:
            while True:
                pieces = self._todo.get()
                if pieces is None:
                    return
                self._done.put(self._run(pieces))
        except BaseException as exc:  # noqa: B036 (reported to the caller's thread)
            self._died = exc

    def _run(self, pieces: list[Piece]) -> list:
        try:
            frames = [p.source[p.lo : p.lo + p.n] for p in pieces]
            embeddings = self._encode(frames[0] if len(frames) == 1 else np.concatenate(frames))
        except EncoderFidelityError:
            raise  # the engine cannot be trusted: the whole run stops
        except Exception as exc:  # e.g. out of memory: these videos fail, the run goes on
            return [(p.video, p.offset, p.n, exc) for p in pieces]
        out, lo = [], 0
        for p in pieces:
            out.append((p.video, p.offset, p.n, embeddings[lo : lo + p.n]))
            lo += p.n
        return out
