"""Panda-70M: ``panda70m_training_*.csv``, ``panda70m_validation.csv``,
``panda70m_testing.csv`` with ``videoID,url,timestamp,caption,matching_score`` (training also
``desirable_filtering`` and ``shot_boundary_detection``).

One source video per line; its clips are Python-literal lists in the cells
(``"[['0:00:00.000', '0:00:05.105'], ...]"``, ``"['a man ...', ...]"``, ``"[0.43, ...]"``),
parsed with ``ast.literal_eval`` (literals only, never code) and paired by position. One row
per clip: ``id`` ``<videoID>_<clip index>``, the clip's window, its caption and
``matching_score``; training rows keep ``desirable_filtering`` and the clip's
``shot_boundaries`` (seconds). A clip whose window is invalid (start after end, ...) is left
out and counted, the others keeping their index (``--strict`` stops at the first). The
training csv runs to tens of millions of clips: it is read and written as a stream.
"""

from __future__ import annotations

import pyarrow as pa

from . import register
from .core import (
    ConvertError,
    check_window,
    clock_seconds,
    finite,
    literal,
    split_from_filename,
    text_of,
    where,
    youtube_url,
)
from .text import read_csv

TYPES = {
    "matching_score": pa.float64(),
    "clip_index": pa.int64(),
    "shot_boundaries": pa.list_(pa.list_(pa.float64())),
}


@register(
    "panda70m",
    "Panda-70M (clips with captions)",
    "panda70m_training_*.csv, panda70m_validation.csv, panda70m_testing.csv",
    TYPES,
)
def convert(paths, options, report):
    empty = 0
    for path in paths:
        split = options.split or split_from_filename(path)
        required = ("videoID", "url", "timestamp", "caption")
        for line, raw in read_csv(path, required, options.encoding, ("matching_score",), report):
            video_id = (raw["videoID"] or "").strip()
            if not video_id:
                raise ConvertError(path, "empty videoID", line)
            try:
                clips = _clips(raw)
            except (ValueError, TypeError) as exc:
                raise ConvertError(path, f"{video_id}: {exc}", line) from None
            if not clips:
                empty += 1
            url = (raw["url"] or "").strip() or youtube_url(video_id)
            for i, clip in enumerate(clips):
                if isinstance(clip, str):  # an invalid window; the others keep their index
                    report.skip(path, line, f"{video_id} clip {i}: {clip}")
                    continue
                start, end, caption, score, desirable, shots = clip
                yield {
                    "id": f"{video_id}_{i}",
                    "location": url,
                    "caption": caption,
                    "start": start,
                    "end": end,
                    "split": split,
                    "youtube_id": video_id,
                    "clip_index": i,
                    "matching_score": score,
                    "desirable_filtering": desirable,
                    "shot_boundaries": shots,
                    "_clip_file": f"{video_id}_{i}",
                    "_video_file": video_id,
                    "_where": where(path, line),
                }
    if empty:
        report.note(f"{empty} source videos list no clip (empty lists): no rows for them")


def _clips(raw: dict) -> list[tuple | str]:
    """The line's clips, paired by position: a tuple each, or for a clip whose window is
    invalid the reason (a string). ValueError when the cells are not lists that pair up."""
    cells = ("timestamp", "caption", "matching_score", "desirable_filtering",
             "shot_boundary_detection")  # fmt: skip
    spans, captions, scores, desirable, shots = (_list(raw.get(c) or "", c) for c in cells)
    scores, desirable, shots = (x if x is not None else [None] * len(spans)
                                for x in (scores, desirable, shots))  # fmt: skip
    spans, captions = spans or [], captions or []
    lengths = {len(spans), len(captions), len(scores), len(desirable), len(shots)}
    if len(lengths) != 1:
        raise ValueError(
            f"{len(spans)} timestamps, {len(captions)} captions and {len(scores)}"
            " scores (and the other lists) must pair up one to one"
        )
    clips: list[tuple | str] = []
    for span, caption, score, good, cuts in zip(
        spans, captions, scores, desirable, shots, strict=True
    ):
        try:
            if not isinstance(span, list | tuple) or len(span) != 2:
                raise ValueError(f"a timestamp is {span!r}, not [start, end]")
            start, end = check_window(clock_seconds(span[0]), clock_seconds(span[1]))
        except ValueError as exc:
            clips.append(str(exc))
            continue
        boundaries = None
        if cuts is not None:
            if not isinstance(cuts, list | tuple) or any(
                not isinstance(c, list | tuple) or len(c) != 2 for c in cuts
            ):
                raise ValueError(f"shot boundaries {cuts!r} are not [[start, end], ...]")
            boundaries = [[clock_seconds(a), clock_seconds(b)] for a, b in cuts]
        clips.append((start, end, text_of(caption), finite(score, 'a matching score'),
                      None if good is None else str(good), boundaries))  # fmt: skip
    return clips


def _list(cell: str, name: str) -> list | None:
    value = literal(cell)
    if value is not None and not isinstance(value, list | tuple):
        raise ValueError(f"{name} is {value!r}, not a list")
    return None if value is None else list(value)
