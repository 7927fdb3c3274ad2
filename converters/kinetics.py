"""Kinetics 400 / 600 / 700 / 700-2020: csv ``label,youtube_id,time_start,time_end,split``.

400 adds ``is_cc``; test files have no label; 700 names the validation split ``validate``.
A video can hold several clips with other labels and overlapping windows, so a clip is
identified by (youtube id, start, end): its ``id`` is the downloader's file name
``<youtube_id>_<start>_<end>``, which ``--video-root`` also looks for (in any sub-folder, e.g.
``DIR/<label>/``) before ``<youtube_id>.mp4``. A window of fractional seconds keeps its
fraction in the id (``_000010.2_000020.7``), so that it never takes the ``_000010_000020``
clip's file. Lines whose window is not valid seconds (negative, start after end, not a
number) are left out and counted (``--strict`` stops). Repeated rows and rows sharing an id
are handled for every converter by :mod:`converters.ids`.
"""

from __future__ import annotations

from . import register
from .core import clip_key, expect, normalise_split, split_from_filename, where, window, youtube_url
from .text import read_csv


@register(
    "kinetics", "Kinetics 400/600/700/700-2020", "the csv files (train.csv, validate.csv, ...)"
)
def convert(paths, options, report):
    rows = []
    for path in paths:
        default_split = options.split or split_from_filename(path)
        required = ("youtube_id", "time_start", "time_end")
        # Test files have no label: the note says so rather than leave captions empty unsaid.
        for line, raw in read_csv(path, required, options.encoding, ("label",), report):
            youtube_id = (raw["youtube_id"] or "").strip()
            expect(bool(youtube_id), path, "empty youtube_id", line)
            try:
                start, end = window(raw["time_start"], raw["time_end"], ("time_start", "time_end"))
            except ValueError as exc:
                report.skip(path, line, str(exc))
                continue
            label = (raw.get("label") or "").strip() or None
            row = {
                "id": clip_key(youtube_id, start, end),
                "location": youtube_url(youtube_id),
                "caption": label,
                "start": start,
                "end": end,
                "split": normalise_split(raw.get("split")) or default_split,
                "label": label,
                "youtube_id": youtube_id,
                "_clip_file": clip_key(youtube_id, start, end),
                "_video_file": youtube_id,
                "_where": where(path, line),
            }
            if "is_cc" in raw:
                row["is_cc"] = (raw["is_cc"] or "").strip() in ("1", "True", "true")
            rows.append(row)
    return rows
