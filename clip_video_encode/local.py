"""The local executor: decode in worker processes, encode in one thread, write shards.

Decoding runs in video2numpy's worker pool; the encoder runs in a thread of its own (torch
releases the GIL), so this thread keeps taking frames from the decoders while a batch is
being encoded. Batches span videos, so short videos still fill them. Both hand-offs are
bounded queues: a slow encoder makes the decoders wait, never fills memory.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from video2numpy.reader import stream_videos
from video2numpy.status import FAILED_TO_FETCH, SUCCESS

from .dataset import EncodeJob, finish_sample, open_destination, prepare_run
from .encoder import Encoder
from .tars import tar_rows
from .writer import ShardWriter

FAILED_TO_ENCODE = "failed_to_encode"


@dataclass
class _Video:
    shard: int  # position in the list of shards to do
    row: int  # position in its shard
    parts: list[np.ndarray | None] = field(default_factory=list)
    frames: int = 0  # frames sent to the encoder
    encoded: int = 0  # frames whose embeddings came back
    record: dict | None = None
    error: str | None = None


def encode_dataset(
    job: EncodeJob, encoder: Encoder | None = None, progress: bool | None = None
) -> dict:
    """Run ``job`` with the local executor; returns the run's summary (see ``prepare_run``)."""
    encoder = encoder or Encoder(job.encoder)  # first: a bad model leaves no empty dest
    fs, dest = open_destination(job.dest)
    run = prepare_run(job, encoder, fs, dest)
    shards = run["todo"]
    videos: list[_Video] = []
    writers: dict[int, ShardWriter] = {}
    summary = run["summary"]
    scratch = tempfile.mkdtemp(prefix="clip-video-encode-")

    def sources():
        """Input rows in shard order, as the decode pool asks for them."""
        for s, shard in enumerate(shards):
            known = shard.tar is None
            writers[s] = ShardWriter(
                fs, dest, shard.name, len(shard.rows) if known else None,
                encoder.embed_dim, run["captions"], job.output_format,
            )  # fmt: skip
            rows = shard.rows if known else tar_rows(shard.tar, scratch)
            for r, row in enumerate(rows):
                if not known:
                    shard.rows.append(row)
                videos.append(_Video(s, r))
                yield {"location": row.get("fetch", row["location"]),
                       "start": row["start"], "end": row["end"]}  # fmt: skip
            if not known:  # a tar's writer cannot complete before its size is known
                writers[s].n_rows = len(shard.rows)
                close_complete()

    def close_complete() -> None:
        for s in [s for s, w in writers.items() if w.complete]:
            summary.shard_done(writers.pop(s).close())

    def finish(i: int) -> None:
        video = videos[i]
        row = shards[video.shard].rows[video.row]
        record = dict(video.record)
        embeddings = None
        if row.get("missing_member"):
            record.update(status=FAILED_TO_FETCH, error_message=row["missing_member"])
        elif video.error is not None:
            record.update(status=FAILED_TO_ENCODE, error_message=video.error)
        elif record["status"] == SUCCESS and video.parts:
            embeddings = np.concatenate(video.parts)
        sample = finish_sample(row, video.row, record, embeddings, encoder, job)
        writers[video.shard].add(sample)
        summary.count(sample.meta)
        video.parts = []
        close_complete()

    pipeline = _EncodeThread(encoder.encode, encoder.batch_size)
    waiting: set[int] = set()  # decoded videos whose frames are still being encoded

    def collect() -> None:
        for i, offset, n, result in pipeline.results():
            video = videos[i]
            video.encoded += n
            if isinstance(result, Exception):
                video.error = f"encoding failed: {type(result).__name__}: {result}"
            else:
                video.parts[offset] = result
        for i in [i for i in waiting if videos[i].encoded >= videos[i].frames]:
            waiting.discard(i)
            finish(i)

    total = sum(len(s.rows) for s in shards) if all(s.tar is None for s in shards) else None
    bar = tqdm(total=total, unit="video", disable=_quiet(progress), desc="encode")
    try:
        stream = stream_videos(sources(), run["frames"], job.workers, job.timeout)
        for chunk in stream:
            video = videos[chunk.index]
            if len(chunk.frames):
                video.parts.append(None)
                video.frames += len(chunk.frames)
                pipeline.put(chunk.index, len(video.parts) - 1, chunk.frames)
            if chunk.record is not None:
                video.record = chunk.record
                _remove_scratch(shards[video.shard].rows[video.row], scratch)
                bar.update(1)
                if chunk.record["status"] != SUCCESS:
                    pipeline.forget(chunk.index)
                    video.encoded = video.frames  # nothing to wait for
                waiting.add(chunk.index)
            collect()
        pipeline.flush()
        while waiting:
            pipeline.wait()
            collect()
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    finally:
        pipeline.stop()
        bar.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return summary.finish()


def _remove_scratch(row: dict, scratch: str) -> None:
    path = row.get("fetch")
    if path and path.startswith(scratch):
        with contextlib.suppress(OSError):
            os.remove(path)


def _quiet(progress: bool | None) -> bool | None:
    return None if progress is None else not progress


class _EncodeThread:
    """Batches frames across videos and encodes them in a background thread."""

    def __init__(self, encode: Callable[[np.ndarray], np.ndarray], batch_size: int) -> None:
        self._encode = encode
        self._batch_size = batch_size
        self._pieces: list[tuple[int, int, np.ndarray]] = []
        self._size = 0
        self._todo: queue.Queue = queue.Queue(maxsize=2)
        self._done: queue.Queue = queue.Queue()
        self._dropped: set[int] = set()
        self._in_flight = 0
        self._thread = threading.Thread(target=self._loop, daemon=True, name="encoder")
        self._thread.start()

    def put(self, video: int, offset: int, frames: np.ndarray) -> None:
        self._pieces.append((video, offset, frames))
        self._size += len(frames)
        if self._size >= self._batch_size:
            self.flush()

    def forget(self, video: int) -> None:
        """A video failed after some of its frames were queued: drop what it sent."""
        self._dropped.add(video)
        self._pieces = [p for p in self._pieces if p[0] != video]
        self._size = sum(len(p[2]) for p in self._pieces)

    def flush(self) -> None:
        if self._pieces:
            self._in_flight += 1
            self._todo.put(self._pieces)  # blocks while two batches wait: backpressure
            self._pieces, self._size = [], 0

    def results(self):
        """Finished pieces as ``(video, offset, frames, embeddings or exception)``; never
        blocks."""
        while True:
            try:
                batch = self._done.get_nowait()
            except queue.Empty:
                return
            self._in_flight -= 1
            for video, offset, n, result in batch:
                if video not in self._dropped:
                    yield video, offset, n, result

    def wait(self) -> None:
        """Block until at least one batch has finished (if any is in flight)."""
        if self._in_flight:
            batch = self._done.get()
            self._done.put(batch)

    def stop(self) -> None:
        self._todo.put(None)
        self._thread.join(timeout=60)

    def _loop(self) -> None:
        while True:
            pieces = self._todo.get()
            if pieces is None:
                return
            frames = np.concatenate([p[2] for p in pieces])
            try:
                embeddings = self._encode(frames)
            except Exception as exc:  # e.g. out of memory: these videos fail, the run goes on
                self._done.put([(v, o, len(f), exc) for v, o, f in pieces])
                continue
            out, lo = [], 0
            for video, offset, part in pieces:
                out.append((video, offset, len(part), embeddings[lo : lo + len(part)]))
                lo += len(part)
            self._done.put(out)
