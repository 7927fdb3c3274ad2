"""DiDeMo (Localizing Moments in Video with Natural Language): ``train_data.json``,
``val_data.json``, ``test_data.json``, lists of ``{"annotation_id", "description", "video",
"times": [[first, last], ...], "dl_link"}``; ``times`` are each annotator's choice of 5 s
segments (0-5, inclusive), so segment ``k`` is ``[5k, 5k + 5)`` seconds.

One row per description: ``id`` the ``annotation_id``, the moment most annotators chose as
the window (ties: the first listed), every annotator's moment in seconds as ``moments``, the
description as caption, the Flickr ``dl_link`` as location when the file has it (else
``--video-root`` finds the ``video`` file by name).
"""

from __future__ import annotations

import os
from collections import Counter

import pyarrow as pa

from . import register
from .core import ConvertError, split_from_filename
from .text import read_json

SEGMENT = 5.0
TYPES = {"moments": pa.list_(pa.list_(pa.float64()))}


@register(
    "didemo",
    "DiDeMo (moments described in text)",
    "train_data.json, val_data.json, test_data.json",
    TYPES,
)
def convert(paths, options, report):
    for path in paths:
        data = read_json(path, options.encoding)
        if not isinstance(data, list):
            raise ConvertError(path, 'expected a list of {"video", "times", "description"}')
        split = options.split or split_from_filename(path)
        for n, item in enumerate(data):
            try:
                video = str(item["video"])
                times = [(int(a), int(b)) for a, b in item["times"]]
            except (KeyError, TypeError, ValueError) as exc:
                raise ConvertError(
                    path,
                    f"entry {n}: needs video and times as [[first, last],"
                    f" ...] segment numbers ({exc})",
                ) from None
            if not times or any(b < a or a < 0 for a, b in times):
                raise ConvertError(
                    path,
                    f"entry {n} ({video}): times {item['times']} are not"
                    " [first, last] segment numbers",
                )
            first, last = Counter(times).most_common(1)[0][0]
            stem = os.path.splitext(video)[0]
            yield {
                "id": str(item.get("annotation_id", f"{stem}_{n}")),
                "location": item.get("dl_link") or None,
                "caption": str(item.get("description") or "").strip() or None,
                "start": first * SEGMENT,
                "end": (last + 1) * SEGMENT,
                "split": split,
                "video": video,
                "moments": [[a * SEGMENT, (b + 1) * SEGMENT] for a, b in times],
                "_video_file": [stem, video],
            }
