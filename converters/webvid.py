"""WebVid-2M / 10M: csv ``videoid,contentUrl,duration,page_dir,name`` (the 2.5M release orders
the columns differently; read by name). Durations are ISO-8601 (``PT00H00M17S``); captions
may hold commas, quoted newlines, surrounding spaces and any script. ``--video-root`` looks for
``<videoid>.mp4`` (video2dataset and the WebVid download scripts name files so, per page_dir
folder or flat).
"""

from __future__ import annotations

from . import register
from .core import ConvertError, expect, iso_duration, split_from_filename, where
from .text import read_csv


@register("webvid", "WebVid-2M/10M (results_*.csv)", "results_2M_train.csv, results_2M_val.csv")
def convert(paths, options, report):
    rows = []
    for path in paths:
        split = options.split or split_from_filename(path)
        for line, raw in read_csv(
            path,
            ("videoid", "contentUrl", "name"),
            options.encoding,
            ("duration", "page_dir"),
            report,
        ):
            video_id = (raw["videoid"] or "").strip()
            url = (raw["contentUrl"] or "").strip()
            expect(bool(video_id and url), path, "empty videoid or contentUrl", line)
            duration = None
            if (raw.get("duration") or "").strip():
                try:
                    duration = iso_duration(raw["duration"])
                except ValueError as exc:
                    raise ConvertError(path, str(exc), line) from exc
            rows.append(
                {
                    "id": video_id,
                    "location": url,
                    "caption": " ".join((raw["name"] or "").split()) or None,
                    "split": split,
                    "duration": duration,
                    "page_dir": (raw.get("page_dir") or "").strip() or None,
                    "_video_file": video_id,
                    "_where": where(path, line),
                }
            )
    return rows
