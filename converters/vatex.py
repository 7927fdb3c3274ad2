"""VATEX v1.0 / v1.1: a JSON list of ``{"videoID": "<ytid>_<start>_<end>", "enCap": [10],
"chCap": [10]}``; the private test file has ids only. All captions are kept: ``caption`` is
the first English one (``KEY.txt``), ``captions`` all ten, ``captions_zh`` the Chinese ones.
An item whose window (in its ``videoID``) is invalid (start after end, ...) is left out and
counted with its line (``--strict`` stops at the first).
"""

from __future__ import annotations

from . import register
from .core import (
    ConvertError,
    check_window,
    expect,
    split_clip_key,
    split_from_filename,
    text_of,
    where,
    youtube_url,
)
from .text import read_json_doc


@register("vatex", "VATEX v1.0/v1.1 (English and Chinese captions)", "vatex_*.json")
def convert(paths, options, report):
    rows = []
    for path in paths:
        doc = read_json_doc(path, options.encoding, depth=1)
        data = doc.value
        expect(isinstance(data, list), path, "expected a JSON list of {videoID, enCap, chCap}")
        split = options.split or split_from_filename(path)
        for i, item in enumerate(data):
            line = doc.line(i)
            expect(
                isinstance(item, dict) and "videoID" in item,
                path,
                f"item {i} has no videoID: {str(item)[:80]}",
                line,
            )
            video_id = text_of(item["videoID"]) or ""
            try:
                youtube_id, start, end = split_clip_key(video_id)
            except ValueError as exc:
                raise ConvertError(path, f"item {i}: {exc}", line) from exc
            try:
                check_window(start, end)
            except ValueError as exc:
                report.skip(path, line, f"item {i} ({video_id}): {exc}")
                continue
            english = _texts(item.get("enCap"))
            rows.append(
                {
                    "id": video_id,
                    "location": youtube_url(youtube_id),
                    "caption": english[0] if english else None,
                    "start": float(start),
                    "end": float(end),
                    "split": split,
                    "captions": english,
                    "captions_zh": _texts(item.get("chCap")),
                    "youtube_id": youtube_id,
                    "_clip_file": video_id,
                    "_video_file": youtube_id,
                    "_where": where(path, line),
                }
            )
    return rows


def _texts(value) -> list[str]:
    """A caption list's non-empty texts (one caption given as a string is a list of one)."""
    values = value if isinstance(value, list) else [value]
    return [t for t in (text_of(v) for v in values) if t is not None]
