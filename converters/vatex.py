"""VATEX v1.0 / v1.1: a JSON list of ``{"videoID": "<ytid>_<start>_<end>", "enCap": [10],
"chCap": [10]}``; the private test file has ids only. All captions are kept: ``caption`` is
the first English one (``KEY.txt``), ``captions`` all ten, ``captions_zh`` the Chinese ones.
"""

from __future__ import annotations

from . import register
from .core import ConvertError, expect, split_clip_key, split_from_filename, youtube_url
from .text import read_json


@register("vatex", "VATEX v1.0/v1.1 (English and Chinese captions)", "vatex_*.json")
def convert(paths, options, report):
    rows = []
    for path in paths:
        data = read_json(path, options.encoding)
        expect(isinstance(data, list), path, "expected a JSON list of {videoID, enCap, chCap}")
        split = options.split or split_from_filename(path)
        for i, item in enumerate(data):
            expect(
                isinstance(item, dict) and "videoID" in item,
                path,
                f"item {i} has no videoID: {str(item)[:80]}",
            )
            try:
                youtube_id, start, end = split_clip_key(str(item["videoID"]))
            except ValueError as exc:
                raise ConvertError(path, f"item {i}: {exc}") from exc
            english = [str(c).strip() for c in item.get("enCap") or []]
            chinese = [str(c).strip() for c in item.get("chCap") or []]
            rows.append(
                {
                    "id": item["videoID"],
                    "location": youtube_url(youtube_id),
                    "caption": english[0] if english else None,
                    "start": float(start),
                    "end": float(end),
                    "split": split,
                    "captions": english,
                    "captions_zh": chinese,
                    "youtube_id": youtube_id,
                    "_clip_file": item["videoID"],
                    "_video_file": youtube_id,
                }
            )
    return rows
