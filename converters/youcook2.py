"""YouCook2: ``{"database": {ytid: {"annotations": [{"segment": [s, e], "sentence"}],
"subset": "training", "duration", "video_url"}}}``. One row per annotated segment; a video
without annotations (the test subset) gets one whole-video row without caption.
"""

from __future__ import annotations

from . import register
from .core import expect, normalise_split, youtube_url
from .text import read_json


@register("youcook2", "YouCook2 (procedure segments)", "youcookii_annotations_trainval.json")
def convert(paths, options, report):
    rows = []
    for path in paths:
        data = read_json(path, options.encoding)
        expect(
            isinstance(data, dict) and isinstance(data.get("database"), dict),
            path,
            'expected {"database": {<youtube id>: {...}}}',
        )
        for youtube_id, video in data["database"].items():
            base = {
                "location": video.get("video_url") or youtube_url(youtube_id),
                "split": normalise_split(video.get("subset")),
                "youtube_id": youtube_id,
                "duration": video.get("duration"),
                "recipe_type": video.get("recipe_type"),
                "_video_file": youtube_id,
            }
            annotations = video.get("annotations") or []
            if not annotations:
                rows.append({"id": youtube_id, **base})
            for i, annotation in enumerate(annotations):
                start, end = (float(t) for t in annotation["segment"])
                rows.append(
                    {
                        "id": f"{youtube_id}_{annotation.get('id', i)}",
                        **base,
                        "caption": str(annotation.get("sentence", "")).strip() or None,
                        "start": start,
                        "end": end,
                        "segment": int(annotation.get("id", i)),
                    }
                )
    return rows
