"""ActivityNet Captions: ``{"v_<ytid>": {"duration": s, "timestamps": [[s, e], ...],
"sentences": [...]}}`` (train.json, val_1.json, val_2.json).

One row per segment, ``id`` ``<ytid>_<segment index>``. Ends past the video's duration are
clamped to it (the annotations have many); segments that are empty after that (start >= end)
are left out and counted in the report.
"""

from __future__ import annotations

from . import register
from .core import expect, split_from_filename, youtube_url
from .text import read_json


@register(
    "activitynet", "ActivityNet Captions (dense captions)", "train.json, val_1.json, val_2.json"
)
def convert(paths, options, report):
    rows, empty, clamped = [], 0, 0
    for path in paths:
        data = read_json(path, options.encoding)
        expect(isinstance(data, dict), path, 'expected {"v_<id>": {"timestamps", "sentences"}}')
        split = options.split or split_from_filename(path)
        for key, video in data.items():
            expect(
                isinstance(video, dict) and "timestamps" in video and "sentences" in video,
                path,
                f"{key}: no timestamps/sentences",
            )
            youtube_id = key.removeprefix("v_")
            duration = float(video["duration"]) if video.get("duration") is not None else None
            expect(
                len(video["timestamps"]) == len(video["sentences"]),
                path,
                f"{key}: {len(video['timestamps'])} timestamps but"
                f" {len(video['sentences'])} sentences",
            )
            for i, ((start, end), sentence) in enumerate(
                zip(video["timestamps"], video["sentences"], strict=True)
            ):
                start, end = max(0.0, float(start)), float(end)
                if duration is not None and end > duration:
                    end, clamped = duration, clamped + 1
                if end <= start:
                    empty += 1
                    continue
                rows.append(
                    {
                        "id": f"{youtube_id}_{i}",
                        "location": youtube_url(youtube_id),
                        "caption": sentence.strip(),
                        "start": start,
                        "end": end,
                        "split": split,
                        "youtube_id": youtube_id,
                        "segment": i,
                        "duration": duration,
                        "_video_file": [youtube_id, key],  # <id>.mp4 or v_<id>.mp4
                    }
                )
    if clamped:
        report.note(f"{clamped} segment ends past their video's duration clamped to it")
    if empty:
        report.note(f"{empty} empty segments (start >= end after clamping) left out")
    return rows
