"""OpenVid-1M: ``OpenVid-1M.csv`` (``video,caption,aesthetic score,motion score,temporal
consistency score,camera motion,frame,fps,seconds``; the HD subset has the same columns).

One row per video. The videos ship inside zip archives, not at URLs: ``--video-root`` with
the unpacked files is needed (``location`` is the file named in ``video``).
"""

from __future__ import annotations

import os

import pyarrow as pa

from . import register
from .core import ConvertError, finite, split_from_filename, where
from .text import read_csv

NUMBERS = {
    "aesthetic score": "aesthetic_score",
    "motion score": "motion_score",
    "temporal consistency score": "temporal_consistency_score",
    "fps": "fps",
    "seconds": "duration",
}
EXPECTED = (*NUMBERS, "frame", "camera motion")
TYPES = {**{name: pa.float64() for name in NUMBERS.values()}, "frames": pa.int64()}


@register(
    "openvid",
    "OpenVid-1M (videos with captions; needs --video-root)",
    "OpenVid-1M.csv or OpenVidHD.csv",
    TYPES,
)
def convert(paths, options, report):
    for path in paths:
        split = options.split or split_from_filename(path)
        for line, raw in read_csv(path, ("video", "caption"), options.encoding, EXPECTED, report):
            name = (raw["video"] or "").strip()
            if not name:
                raise ConvertError(path, "empty video", line)
            row = {
                "id": os.path.splitext(name)[0],
                "location": None,
                "caption": " ".join((raw["caption"] or "").split()) or None,
                "start": None,
                "end": None,
                "split": split,
            }
            try:
                for column, field in NUMBERS.items():
                    row[field] = finite(raw.get(column), column)
                frames = finite(raw.get("frame"), "frame")
                if frames is not None and (not frames.is_integer() or abs(frames) >= 2**63):
                    raise ValueError(f"frame {raw.get('frame')!r} is not a count")
                row["frames"] = None if frames is None else int(frames)
            except ValueError as exc:
                raise ConvertError(path, f"{name}: {exc}", line) from None
            row["camera_motion"] = (raw.get("camera motion") or "").strip() or None
            row["_video_file"] = os.path.splitext(name)[0]
            row["_where"] = where(path, line)
            yield row
