"""YouCook2: ``{"database": {ytid: {"annotations": [{"segment": [s, e], "sentence"}],
"subset": "training", "duration", "video_url"}}}``. One row per annotated segment; a video
without annotations (the test subset) gets one whole-video row without caption. A segment
whose window is invalid (start after end, ...) is left out and counted with its line
(``--strict`` stops at the first).
"""

from __future__ import annotations

import math

from . import register
from .core import ConvertError, expect, normalise_split, text_of, where, window, youtube_url
from .text import read_json_doc


@register("youcook2", "YouCook2 (procedure segments)", "youcookii_annotations_trainval.json")
def convert(paths, options, report):
    rows = []
    for path in paths:
        doc = read_json_doc(path, options.encoding, depth=4)
        data = doc.value
        expect(
            isinstance(data, dict) and isinstance(data.get("database"), dict),
            path,
            'expected {"database": {<youtube id>: {...}}}',
        )
        for youtube_id, video in data["database"].items():
            line = doc.line("database", youtube_id)
            annotations = video.get("annotations") if isinstance(video, dict) else None
            expect(
                bool(youtube_id.strip()) and isinstance(annotations, list | type(None)),
                path,
                f"{youtube_id!r}: needs a video id and an annotations list",
                line,
            )
            base = {
                "location": text_of(video.get("video_url")) or youtube_url(youtube_id),
                "split": normalise_split(video.get("subset")),
                "youtube_id": youtube_id,
                "duration": _number(video.get("duration")),
                "recipe_type": text_of(video.get("recipe_type")),
                "_video_file": youtube_id,
            }
            if not annotations:
                rows.append({"id": youtube_id, **base, "_where": where(path, line)})
            for i, annotation in enumerate(annotations or []):
                at = doc.line("database", youtube_id, "annotations", i) or line
                if not isinstance(annotation, dict):
                    raise ConvertError(path, f"{youtube_id} annotation {i}: not an object", at)
                number = annotation.get("id", i)
                if not isinstance(number, int) or isinstance(number, bool):
                    raise ConvertError(path, f"{youtube_id} annotation {i}: id {number!r}", at)
                try:
                    segment = annotation.get("segment")
                    if not isinstance(segment, list) or len(segment) != 2:
                        raise ValueError(f"segment {segment!r} is not [start, end]")
                    start, end = window(*segment)
                except ValueError as exc:
                    report.skip(path, at, f"{youtube_id} annotation {number}: {exc}")
                    continue
                rows.append(
                    {
                        "id": f"{youtube_id}_{number}",
                        **base,
                        "caption": text_of(annotation.get("sentence")),
                        "start": start,
                        "end": end,
                        "segment": number,
                        "_where": where(path, at),
                    }
                )
    return rows


def _number(value) -> float | None:
    """A duration as the file gives it, or None when it is not a finite number."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) and not isinstance(value, bool) else None
