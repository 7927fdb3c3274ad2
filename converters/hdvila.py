"""HD-VILA-100M: JSON Lines (``hdvila_part*.jsonl``), one source video per line with its
clips: ``{"video_id", "url", "clip": [{"clip_id": "<id>.<n>.mp4", "span": [start, end]}]}``,
spans as ``HH:MM:SS.mmm``.

One row per clip: ``id`` the clip file's name without ``.mp4``, the span as the window (no
caption: HD-VILA's transcripts ship separately). Streamed, line by line. A clip whose span is
not a valid window is left out and counted with its line (``--strict`` stops at the first).
"""

from __future__ import annotations

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


@register(
    "hdvila",
    "HD-VILA-100M (clips)",
    "hdvila_part0.jsonl ... hdvila_part10.jsonl",
    captions=False,
)
def convert(paths, options, report):
    empty = 0
    for path in paths:
        split = options.split or split_from_filename(path)
        for line, item in read_jsonl(path, options.encoding):
            video_id = text_of(item.get("video_id")) if isinstance(item, dict) else None
            clips = (item.get("clip") or []) if video_id else None
            if not isinstance(clips, list):
                raise ConvertError(path, 'expected {"video_id", "url", "clip": [...]}', line)
            url = text_of(item.get("url")) or youtube_url(video_id)
            if not clips:
                empty += 1
            for n, clip in enumerate(clips):
                if not isinstance(clip, dict):
                    raise ConvertError(path, f"{video_id} clip {n}: not {{clip_id, span}}", line)
                try:
                    span = clip.get("span")
                    if not isinstance(span, list) or len(span) != 2:
                        raise ValueError(f"span {span!r} is not [start, end]")
                    start, end = check_window(clock_seconds(span[0]), clock_seconds(span[1]))
                except ValueError as exc:
                    report.skip(path, line, f"{video_id} clip {n}: {exc}")
                    continue
                name = text_of(clip.get("clip_id")) or ""
                name = (name[:-4] if name.lower().endswith(".mp4") else name) or f"{video_id}.{n}"
                yield {
                    "id": name,
                    "location": url,
                    "caption": None,
                    "start": start,
                    "end": end,
                    "split": split,
                    "youtube_id": video_id,
                    "_clip_file": name,
                    "_video_file": video_id,
                    "_where": where(path, line),
                }
    if empty:
        report.note(f"{empty} videos list no clip: no rows for them")
