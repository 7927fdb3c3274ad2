"""One video from location to sampled frames: the step every executor runs.

:func:`sample_video` never raises for a bad video: it yields frame chunks and always ends with a
chunk that carries the video's record (status, error, metadata, timestamps). Executors (the
local worker pool, Ray actors) only move these chunks around.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from .decode import open_video, resolve_backend
from .fetch import FetchOptions, fetch, fetch_beating
from .resize import Resize
from .sampling import Sampling, select_frames
from .status import (
    FAILED_TO_DECODE,
    FAILED_TO_FETCH,
    NO_FRAMES,
    SUCCESS,
    DecodeError,
    FetchError,
)


@dataclass(frozen=True)
class FrameOptions:
    """Everything that decides which frames come out, and how they are obtained."""

    sampling: Sampling = field(default_factory=Sampling)
    resize: Resize = field(default_factory=Resize)
    backend: str = "auto"
    threads: int = 1  # decoder threads per video; parallelism comes from worker processes
    chunk_frames: int = 64  # frames per chunk: bounds memory for long videos
    fetch: FetchOptions = field(default_factory=FetchOptions)


@dataclass(frozen=True)
class Task:
    """One input row: where the video is, and its own window if the table gives one."""

    index: int
    location: str
    start: float | None = None
    end: float | None = None

    @classmethod
    def from_source(cls, index: int, source: str | Mapping) -> Task:
        if isinstance(source, str):
            return cls(index, source)
        return cls(
            index, str(source["location"]), _seconds(source, "start"), _seconds(source, "end")
        )


@dataclass
class Chunk:
    """Consecutive sampled frames of one video.

    The last chunk of a video has ``record`` set (and may hold no frames). When that record's
    status is not ``success``, frames already received for the video must be discarded.
    """

    index: int
    frames: np.ndarray  # (k, H, W, 3) uint8
    timestamps: np.ndarray  # (k,) seconds in the source video
    record: dict | None = None


def sample_video(
    task: Task, options: FrameOptions, workdir: str, heartbeat: float | None = None
) -> Iterator[Chunk | None]:
    """Fetch, decode and sample one video, streaming chunks, ending with its record.

    With ``heartbeat`` (seconds), a remote download yields ``None`` after each such interval
    in which bytes arrived (see :func:`fetch_beating`): for the worker pools, whose stall
    watchdogs would otherwise count a long download as silence."""
    began = time.perf_counter()
    record: dict = {
        "index": task.index,
        "location": task.location,
        "start": task.start,
        "end": task.end,
        "status": SUCCESS,
        "error_message": None,
        "backend": resolve_backend(options.backend),
    }
    timestamps: list[np.ndarray] = []
    shape = (0, *options.resize.output_shape(1, 1))
    try:
        sampling = options.sampling.with_window(task.start, task.end)
        with contextlib.ExitStack() as stack:
            where = (task.location, workdir, options.fetch, sampling.start, sampling.end)
            if heartbeat:
                got = yield from fetch_beating(stack, *where, every=heartbeat)
            else:
                got = stack.enter_context(fetch(*where))
            if os.path.getsize(got.path) == 0:
                raise DecodeError("the file is empty (0 bytes)")
            video = open_video(got.path, options.backend, options.threads)
            record["backend"] = video.backend
            meta = video.meta
            record.update(meta.as_dict())
            shape = (0, *options.resize.output_shape(meta.width, meta.height))
            times = video.frame_times + got.time_offset
            indices = select_frames(times, sampling, video.end_time + got.time_offset)
            if len(indices) == 0:
                record["status"] = NO_FRAMES
                record["error_message"] = _empty_message(sampling, video.end_time)
            for frames, stamps in video.iter_frames(indices, options.resize, options.chunk_frames):
                stamps = stamps + got.time_offset
                timestamps.append(stamps)
                yield Chunk(task.index, frames, stamps)
            warnings = [video.warning] if video.warning else []
            if video.missing:
                warnings.append(
                    f"{video.missing} of {len(indices)} sampled frames could not be decoded"
                    " (corrupt data); they are left out and timestamps say which remain"
                )
            if warnings:
                record["warning"] = "; ".join(warnings)
                if video.missing == len(indices):
                    record["status"] = FAILED_TO_DECODE
                    record["error_message"] = "no sampled frame could be decoded (corrupt data)"
    except FetchError as exc:
        record.update(status=FAILED_TO_FETCH, error_message=str(exc))
    except DecodeError as exc:
        record.update(status=FAILED_TO_DECODE, error_message=str(exc))
    except ValueError as exc:  # a window that is not a window, e.g. end before start
        record.update(status=FAILED_TO_DECODE, error_message=f"bad request: {exc}")
    except Exception as exc:  # a decoder bug must cost one video, not the run
        record.update(status=FAILED_TO_DECODE, error_message=f"{type(exc).__name__}: {exc}")
    stamps = np.concatenate(timestamps) if timestamps else np.zeros(0)
    ok = record["status"] == SUCCESS
    record["n_frames"] = int(len(stamps)) if ok else 0
    record["timestamps"] = [round(float(t), 6) for t in stamps] if ok else []
    record["seconds"] = round(time.perf_counter() - began, 4)
    yield Chunk(task.index, np.zeros(shape, dtype=np.uint8), np.zeros(0), record)


def _seconds(row: Mapping, key: str) -> float | None:
    """A window cell in seconds by the tables' rule (:func:`~video2numpy.table.parse_seconds`:
    ``0:00:01``, ``1:02:03.5`` and ``12.5s`` too; empty and NaN: no bound). A cell that is no
    time raises ValueError naming it: guessing would cut the wrong frames."""
    from .table import TIME_FORMS, parse_seconds  # pyarrow: not in every decode worker

    value = row.get(key)
    try:
        return parse_seconds(value)
    except ValueError:
        raise ValueError(
            f"{key}: {value!r} is not a time; write {TIME_FORMS}, or leave it empty for no bound"
        ) from None


def _empty_message(sampling: Sampling, end_time: float) -> str:
    if sampling.start is not None and sampling.start >= end_time:
        return (
            f"the window starts at {sampling.start:g} s, past the end of the video"
            f" ({end_time:.3f} s)"
        )
    return f"no frame in the window [{sampling.start}, {sampling.end}] s"
