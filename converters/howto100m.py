"""HowTo100M: ``HowTo100M_v1.csv`` (``video_id,category_1,category_2,rank,task_id``) and
``caption.json`` (``{video_id: {"start": [...], "end": [...], "text": [...]}}``, the ASR
subtitles). One row per subtitle; a video of the csv without subtitles gets one whole-video
row. Either file may be given alone.
"""

from __future__ import annotations

from . import register
from .core import expect, read_csv, read_json, youtube_url


@register("howto100m", "HowTo100M (ASR subtitles)", "HowTo100M_v1.csv and/or caption.json")
def convert(paths, options, report):
    videos: dict[str, dict] = {}
    captions: dict[str, dict] = {}
    for path in paths:
        if path.lower().endswith((".csv", ".csv.gz")):
            for line, raw in read_csv(path, ("video_id",), options.encoding):
                video_id = raw["video_id"].strip()
                expect(bool(video_id), path, "empty video_id", line)
                videos[video_id] = {
                    "category_1": raw.get("category_1"),
                    "category_2": raw.get("category_2"),
                    "task_id": raw.get("task_id"),
                }
        else:
            data = read_json(path, options.encoding)
            expect(isinstance(data, dict), path, 'expected {"<id>": {"start", "end", "text"}}')
            for video_id, item in data.items():
                expect(
                    all(k in item for k in ("start", "end", "text")),
                    path,
                    f"{video_id}: needs start, end and text lists",
                )
                n = {len(item["start"]), len(item["end"]), len(item["text"])}
                expect(len(n) == 1, path, f"{video_id}: start/end/text lengths differ")
                captions[video_id] = item
    rows = []
    for video_id in list(videos) + [v for v in captions if v not in videos]:
        base = {
            "location": youtube_url(video_id),
            "split": options.split,
            "youtube_id": video_id,
            **videos.get(video_id, {}),
            "_video_file": video_id,
        }
        item = captions.get(video_id)
        if item is None:
            rows.append({"id": video_id, **base})
            continue
        for i, (start, end, text) in enumerate(
            zip(item["start"], item["end"], item["text"], strict=True)
        ):
            rows.append(
                {
                    "id": f"{video_id}_{i}",
                    **base,
                    "caption": str(text).strip() or None,
                    "start": float(start),
                    "end": float(end),
                    "segment": i,
                }
            )
    return rows
