"""InternVid: JSON Lines with ``YoutubeID``, ``Start_timestamp``, ``End_timestamp``
(``HH:MM:SS.mmm``), ``Caption``, ``Aesthetic_Score`` and ``UMT_Score``.

One row per line (a clip): ``id`` ``<YoutubeID>_<start>_<end>`` in seconds with three
decimals, the scores kept as columns. Files of millions of lines are streamed. A line whose
window is not valid (start after end, not a time) is left out and counted (``--strict``
stops at the first).
"""

from __future__ import annotations

import math

import pyarrow as pa

from . import register
from .core import (
    ConvertError,
    check_window,
    clock_seconds,
    split_from_filename,
    text_of,
    where,
    youtube_url,
)
from .text import read_jsonl

TYPES = {"aesthetic_score": pa.float64(), "umt_score": pa.float64()}


@register(
    "internvid", "InternVid (clips with captions)", "InternVid-10M-FLT.jsonl (or any part)", TYPES
)
def convert(paths, options, report):
    for path in paths:
        split = options.split or split_from_filename(path)
        for line, item in read_jsonl(path, options.encoding):
            names = ("Start_timestamp", "End_timestamp")
            video_id = text_of(item.get("YoutubeID")) if isinstance(item, dict) else None
            if not video_id or any(name not in item for name in names):
                raise ConvertError(path, "needs YoutubeID, Start_timestamp and End_timestamp", line)
            try:
                start, end = check_window(*(clock_seconds(item[name]) for name in names))
            except ValueError as exc:
                report.skip(path, line, f"{video_id}: {exc}")
                continue
            clip = f"{video_id}_{start:.3f}_{end:.3f}"
            yield {
                "id": clip,
                "location": youtube_url(video_id),
                "caption": text_of(item.get("Caption")),
                "start": start,
                "end": end,
                "split": split,
                "youtube_id": video_id,
                "aesthetic_score": _number(item.get("Aesthetic_Score")),
                "umt_score": _number(item.get("UMT_Score")),
                "_clip_file": clip,
                "_video_file": video_id,
                "_where": where(path, line),
            }


def _number(value) -> float | None:
    """A score, or None when the cell is empty or not a finite number (the output table
    holds no NaN or infinity)."""
    try:
        number = None if value is None or value == "" else float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number is not None and math.isfinite(number) else None
