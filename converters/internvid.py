"""InternVid: JSON Lines with ``YoutubeID``, ``Start_timestamp``, ``End_timestamp``
(``HH:MM:SS.mmm``), ``Caption``, ``Aesthetic_Score`` and ``UMT_Score``.

One row per line (a clip): ``id`` ``<YoutubeID>_<start>_<end>`` in seconds with three
decimals, the scores kept as columns. Files of millions of lines are streamed.
"""

from __future__ import annotations

import pyarrow as pa

from . import register
from .core import ConvertError, clock_seconds, split_from_filename, youtube_url
from .text import read_jsonl

TYPES = {"aesthetic_score": pa.float64(), "umt_score": pa.float64()}


@register(
    "internvid", "InternVid (clips with captions)", "InternVid-10M-FLT.jsonl (or any part)", TYPES
)
def convert(paths, options, report):
    for path in paths:
        split = options.split or split_from_filename(path)
        for line, item in read_jsonl(path, options.encoding):
            try:
                video_id = str(item["YoutubeID"]).strip()
                start = clock_seconds(item["Start_timestamp"])
                end = clock_seconds(item["End_timestamp"])
            except (KeyError, TypeError) as exc:
                raise ConvertError(
                    path,
                    f"needs YoutubeID, Start_timestamp and End_timestamp ({exc!r} missing)",
                    line,
                ) from None
            except ValueError as exc:
                raise ConvertError(path, str(exc), line) from None
            if not video_id or end <= start:
                raise ConvertError(
                    path,
                    f"empty YoutubeID or a clip ending before it starts"
                    f" ({item.get('Start_timestamp')} - {item.get('End_timestamp')})",
                    line,
                )
            clip = f"{video_id}_{start:.3f}_{end:.3f}"
            yield {
                "id": clip,
                "location": youtube_url(video_id),
                "caption": str(item.get("Caption") or "").strip() or None,
                "start": start,
                "end": end,
                "split": split,
                "youtube_id": video_id,
                "aesthetic_score": _number(item.get("Aesthetic_Score")),
                "umt_score": _number(item.get("UMT_Score")),
                "_clip_file": clip,
                "_video_file": video_id,
            }


def _number(value) -> float | None:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None
