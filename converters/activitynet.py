"""ActivityNet Captions: ``{"v_<ytid>": {"duration": s, "timestamps": [[s, e], ...],
"sentences": [...]}}`` (train.json, val_1.json, val_2.json).

One row per segment, ``id`` ``<ytid>_<segment index>``. Ends past the video's duration are
clamped to it and starts before 0 moved to 0 (the annotations have many), counted in the
report; segments whose window is invalid even so (not numbers, start after end, empty) are
left out and counted, with their file and line (``--strict`` stops at the first).
"""

from __future__ import annotations

from . import register
from .core import (
    MAX_SECONDS,
    check_window,
    expect,
    seconds,
    split_from_filename,
    text_of,
    where,
    youtube_url,
)
from .text import read_json_doc


@register(
    "activitynet", "ActivityNet Captions (dense captions)", "train.json, val_1.json, val_2.json"
)
def convert(paths, options, report):
    rows, clamped = [], 0
    for path in paths:
        doc = read_json_doc(path, options.encoding, depth=3)
        data = doc.value
        expect(isinstance(data, dict), path, 'expected {"v_<id>": {"timestamps", "sentences"}}')
        split = options.split or split_from_filename(path)
        for key, video in data.items():
            line = doc.line(key)
            youtube_id = key.removeprefix("v_").strip()
            expect(
                bool(youtube_id)
                and isinstance(video, dict)
                and isinstance(video.get("timestamps"), list)
                and isinstance(video.get("sentences"), list),
                path,
                f"{key!r}: needs a video id, and timestamps and sentences lists",
                line,
            )
            timestamps, sentences = video["timestamps"], video["sentences"]
            expect(
                len(timestamps) == len(sentences),
                path,
                f"{key}: {len(timestamps)} timestamps but {len(sentences)} sentences",
                line,
            )
            duration = None
            if video.get("duration") is not None:
                try:
                    duration = seconds(video["duration"], "duration")
                except ValueError as exc:
                    report.skip(path, line, f"{key}: {exc}")
                    continue
            for i, (span, sentence) in enumerate(zip(timestamps, sentences, strict=True)):
                at = doc.line(key, "timestamps", i) or line
                try:
                    if not isinstance(span, list) or len(span) != 2:
                        raise ValueError(f"timestamp {span!r} is not [start, end]")
                    first, last = span
                    if isinstance(first, int | float) and not isinstance(first, bool):
                        if -MAX_SECONDS <= first < 0:
                            first, clamped = 0.0, clamped + 1
                    start, end = seconds(first, "start"), seconds(last, "end")
                    if duration is not None and end > duration:
                        end, clamped = duration, clamped + 1
                    check_window(start, end)
                except ValueError as exc:
                    report.skip(path, at, f"{key} segment {i}: {exc}")
                    continue
                rows.append(
                    {
                        "id": f"{youtube_id}_{i}",
                        "location": youtube_url(youtube_id),
                        "caption": text_of(sentence),
                        "start": start,
                        "end": end,
                        "split": split,
                        "youtube_id": youtube_id,
                        "segment": i,
                        "duration": duration,
                        "_video_file": [youtube_id, key],  # <id>.mp4 or v_<id>.mp4
                        "_where": where(path, at),
                    }
                )
    if clamped:
        report.note(f"{clamped} segment ends past their video's duration (or starts before 0)"
                    " clamped to it")  # fmt: skip
    return rows
