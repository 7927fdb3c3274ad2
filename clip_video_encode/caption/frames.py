"""The frames of each clip to caption: a row's window, its whole video, or fixed windows.

Frames are chosen by video2numpy's own sampler, :func:`video2numpy.sampling.select_frames`
with ``Sampling(num_frames=N, start, end)``: ``N`` frames at
``np.linspace(0, n, N, endpoint=False)`` over the ``n`` frames of the window, by presentation
time, which is the model card's rule over the window instead of the whole file. So a clip
captioned here and the same row encoded by ``clip-video-encode --num-frames N`` refer to the
same frames, and the timestamps of every clip are recorded.

``--per window`` cuts the row's span (its window, else the whole video) by the rule of
``clip-video-hierarchy``'s clip level and ``clip-video-search --level clip``, with their own
functions (:mod:`..hierarchy.windows`: ``video_span``, then ``clip_edges``:
``ceil(length / seconds)`` windows from the span's start, the last ending at its end, the same
float bits), so window ``i`` of a row is clip feature ``i`` there. A video
is fetched, opened and decoded once for all its windows, and clips are yielded as their frames
arrive: memory holds one window of full-size frames however long the video is.

A bad video never raises out of here: it becomes one clip with a status and an error message
(video2numpy's statuses), as everywhere in the project.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from video2numpy.decode import open_video
from video2numpy.fetch import FetchOptions, fetch
from video2numpy.resize import Resize
from video2numpy.sampling import Sampling, select_frames
from video2numpy.status import (
    FAILED_TO_DECODE,
    FAILED_TO_FETCH,
    NO_FRAMES,
    SUCCESS,
    DecodeError,
    FetchError,
)

from ..hierarchy.windows import clip_edges, video_span

PER = ("row", "video", "window")
_EPS = 1e-6  # select_frames' own: two times closer than this are one instant


@dataclass(frozen=True)
class ClipPlan:
    """What a clip is: ``per`` row (the row's window), video (the whole video) or window
    (``window_seconds`` windows of the row's span), with ``num_frames`` frames each."""

    per: str = "row"
    num_frames: int = 8
    window_seconds: float = 4.0
    backend: str = "auto"
    fetch: FetchOptions = field(default_factory=FetchOptions)

    def __post_init__(self) -> None:
        if self.per not in PER:
            raise ValueError(f"--per must be one of {', '.join(PER)}, got {self.per!r}")
        if not 0 < self.window_seconds < float("inf"):  # inf: every window would be empty
            raise ValueError(
                f"--window-seconds must be a finite number > 0, got {self.window_seconds!r}"
            )


@dataclass
class Clip:
    """One clip of one row: its window, its model input (None when it failed) and record."""

    window: int  # index of the window in its row (0 unless --per window)
    start: float | None  # the window as the table writes it (None: the video's own bound)
    end: float | None
    pixels: np.ndarray | None  # (T, C, H, W) float32, the image processor's output
    timestamps: list[float]
    status: str = SUCCESS
    error_message: str | None = None
    warning: str | None = None
    duration: float | None = None  # of the source video, when it was opened


def sample_clips(
    location: str,
    start: float | None,
    end: float | None,
    plan: ClipPlan,
    workdir: str,
    to_pixels: Callable[[list[np.ndarray]], np.ndarray],
) -> Iterator[Clip]:
    """The clips of one row, in time order. ``to_pixels``: frames -> model input (the image
    processor), called as each clip is complete so that full-size frames are dropped at once.
    ``workdir``: this caller's own scratch folder (downloads are named there)."""
    if plan.per == "video":
        start = end = None
    try:
        Sampling(num_frames=1, start=start, end=end)  # the row's window is a window
    except ValueError as exc:
        yield _failed(start, end, FAILED_TO_DECODE, f"bad request: {exc}")
        return
    windows: list = []
    done = [0]  # windows yielded so far
    try:
        with contextlib.ExitStack() as stack:
            got = stack.enter_context(fetch(location, workdir, plan.fetch, start, end))
            if os.path.getsize(got.path) == 0:
                raise DecodeError("the file is empty (0 bytes)")
            video = open_video(got.path, plan.backend)
            duration = float(video.meta.as_dict()["duration"])
            windows = _windows(start, end, duration, plan)
            for clip in _decode(video, got.time_offset, windows, plan, to_pixels, duration):
                done[0] += 1
                yield clip
    except FetchError as exc:
        yield _failed(start, end, FAILED_TO_FETCH, _fetch_message(location, str(exc)))
    except DecodeError as exc:
        yield from _failed_rest(windows, done[0], start, end, str(exc))
    except Exception as exc:  # a decoder bug costs one video, not the run
        yield from _failed_rest(windows, done[0], start, end, f"{type(exc).__name__}: {exc}")


def _failed_rest(windows, done: int, start, end, message: str) -> Iterator[Clip]:
    """A video that failed: one failed clip for the row when its windows are not known yet,
    else one for each window not yielded, so every window keeps its row in the table."""
    if not windows:
        yield _failed(start, end, FAILED_TO_DECODE, message)
        return
    for w in range(done, len(windows)):
        a, b = windows[w]
        yield Clip(w, a, b, None, [], FAILED_TO_DECODE, message)


def _windows(
    start: float | None, end: float | None, duration: float, plan: ClipPlan
) -> list[tuple[float | None, float | None]]:
    if plan.per != "window":
        return [(start, end)]
    lo, hi = video_span({"start": start, "end": end, "duration": duration}, np.zeros(0))
    edges = clip_edges(lo, hi, plan.window_seconds)
    return [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _decode(video, offset, windows, plan, to_pixels, duration) -> Iterator[Clip]:
    """Decode the windows' frames in one pass; yield each window's clip once complete."""
    times = video.frame_times + offset
    end_time = video.end_time + offset
    picks = [
        select_frames(times, Sampling(num_frames=plan.num_frames, start=a, end=b), end_time)
        for a, b in windows
    ]
    indices = np.sort(np.concatenate(picks)) if picks else np.zeros(0, np.int64)
    bounds = [(-np.inf if a is None else a, np.inf if b is None else b) for a, b in windows]
    chunks = (
        (frames, stamps + offset)
        for frames, stamps in video.iter_frames(indices, Resize(mode="native"), plan.num_frames)
    )
    pending: tuple[np.ndarray, np.ndarray] | None = None
    for w, ((a, b), (lo, hi), pick) in enumerate(zip(windows, bounds, picks, strict=True)):
        frames: list[np.ndarray] = []
        stamps: list[float] = []
        while True:
            if pending is None:
                pending = next(chunks, None)
                if pending is None:
                    break
            chunk, chunk_times = pending
            inside = (chunk_times >= lo - _EPS) & (chunk_times < hi - _EPS)
            frames.extend(chunk[inside])
            stamps.extend(float(t) for t in chunk_times[inside])
            later = chunk_times >= hi - _EPS
            if later.any():
                pending = (chunk[later], chunk_times[later])
                break
            pending = None
        yield _clip(w, a, b, frames, stamps, len(pick), plan, to_pixels, duration,
                    video.warning)  # fmt: skip


def _clip(w, a, b, frames, stamps, wanted, plan, to_pixels, duration, warning) -> Clip:
    stamps = [round(t, 6) for t in stamps]
    if wanted == 0:
        return Clip(w, a, b, None, [], NO_FRAMES, _empty_message(a, b, duration), warning,
                    duration)  # fmt: skip
    if not frames:
        return Clip(w, a, b, None, [], FAILED_TO_DECODE,
                    "no sampled frame could be decoded (corrupt data)", warning,
                    duration)  # fmt: skip
    notes = [warning] if warning else []
    if len(frames) < plan.num_frames:
        # Some sampled frames were corrupt: the clip is the ones that decoded, spread evenly
        # over the model's frame count, and the record says so.
        notes.append(
            f"{plan.num_frames - len(frames)} of {plan.num_frames} sampled frames could not be"
            " decoded (corrupt data); the others were repeated in their place"
        )
        keep = np.linspace(0, len(frames), plan.num_frames, endpoint=False).astype(np.int64)
        frames, stamps = [frames[i] for i in keep], [stamps[i] for i in keep]
    pixels = to_pixels(frames)
    return Clip(w, a, b, pixels, stamps, SUCCESS, None, "; ".join(notes) or None, duration)


def _failed(start, end, status: str, message: str) -> Clip:
    return Clip(0, start, end, None, [], status, message)


def _empty_message(a: float | None, b: float | None, duration: float) -> str:
    if a is not None and a >= duration:
        return f"the window starts at {a:g} s, past the end of the video ({duration:.3f} s)"
    return f"no frame in the window [{a}, {b}] s"


def _fetch_message(location: str, message: str) -> str:
    if ".tar#" in location:
        return (
            f"{message}: the location names a member of a tar (a dataset encoded from tars);"
            " caption the tars themselves (SRC = the tars)"
        )
    return message
