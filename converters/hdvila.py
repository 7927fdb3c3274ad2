"""HD-VILA-100M: JSON Lines (``hdvila_part*.jsonl``), one source video per line with its
clips: ``{"video_id", "url", "clip": [{"clip_id": "<id>.<n>.mp4", "span": [start, end]}]}``,
spans as ``HH:MM:SS.mmm``.

One row per clip: ``id`` the clip file's name without ``.mp4``, the span as the window (no
caption: HD-VILA's transcripts ship separately). Streamed, line by line.
"""

from __future__ import annotations

from . import register
from .core import ConvertError, clock_seconds, split_from_filename, youtube_url
from .text import read_jsonl


@register(
    "hdvila", "HD-VILA-100M (clips)", "hdvila_part0.jsonl ... hdvila_part10.jsonl", captions=False
)
def convert(paths, options, report):
    empty = 0
    for path in paths:
        split = options.split or split_from_filename(path)
        for line, item in read_jsonl(path, options.encoding):
            if not isinstance(item, dict) or not str(item.get("video_id") or "").strip():
                raise ConvertError(path, 'expected {"video_id", "url", "clip": [...]}', line)
            video_id = str(item["video_id"]).strip()
            url = str(item.get("url") or "").strip() or youtube_url(video_id)
            clips = item.get("clip") or []
            if not clips:
                empty += 1
            for n, clip in enumerate(clips):
                try:
                    start, end = (clock_seconds(t) for t in clip["span"])
                except (KeyError, TypeError, ValueError) as exc:
                    raise ConvertError(
                        path, f"{video_id} clip {n}: no valid span ({exc})", line
                    ) from None
                name = str(clip.get("clip_id") or f"{video_id}.{n}.mp4")
                name = name[:-4] if name.lower().endswith(".mp4") else name
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
                }
    if empty:
        report.note(f"{empty} videos list no clip: no rows for them")
