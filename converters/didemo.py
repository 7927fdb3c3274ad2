"""DiDeMo (Localizing Moments in Video with Natural Language): ``train_data.json``,
``val_data.json``, ``test_data.json``, lists of ``{"annotation_id", "description", "video",
"times": [[first, last], ...], "dl_link"}``; ``times`` are each annotator's choice of 5 s
segments (0-5, inclusive), so segment ``k`` is ``[5k, 5k + 5)`` seconds.

One row per description: ``id`` the ``annotation_id``, the moment most annotators chose as
the window (ties: the first listed), every annotator's moment in seconds as ``moments``, the
description as caption, the Flickr ``dl_link`` as location when the file has it (else
``--video-root`` finds the ``video`` file by name). An annotator's moment that is not
``[first, last]`` segment numbers is left out of ``moments`` (counted); a description with
no valid moment at all is left out with its line (``--strict`` stops at either).
"""

from __future__ import annotations

import os
from collections import Counter

import pyarrow as pa

from . import register
from .core import MAX_SECONDS, ConvertError, split_from_filename, text_of, where
from .text import read_json_doc

SEGMENT = 5.0
TYPES = {"moments": pa.list_(pa.list_(pa.float64()))}


@register(
    "didemo",
    "DiDeMo (moments described in text)",
    "train_data.json, val_data.json, test_data.json",
    TYPES,
)
def convert(paths, options, report):
    dropped = 0
    for path in paths:
        doc = read_json_doc(path, options.encoding, depth=1)
        if not isinstance(doc.value, list):
            raise ConvertError(path, 'expected a list of {"video", "times", "description"}')
        split = options.split or split_from_filename(path)
        for n, item in enumerate(doc.value):
            line = doc.line(n)
            video = item.get("video") if isinstance(item, dict) else None
            if not isinstance(video, str | int) or isinstance(video, bool) or not str(video):
                raise ConvertError(path, f"entry {n}: needs a video name", line)
            video = str(video)
            times = item.get("times")
            moments = [_moment(t) for t in times] if isinstance(times, list) else []
            valid = [m for m in moments if m is not None]
            if not valid or len(valid) < len(moments) and report.strict:
                report.skip(
                    path, line, f"entry {n} ({video}): times {times!r} are not [first, last]"
                    " segment numbers",
                )  # fmt: skip
                continue
            dropped += len(moments) - len(valid)
            first, last = Counter(valid).most_common(1)[0][0]
            stem = os.path.splitext(video)[0]
            annotation_id = item.get("annotation_id")
            yield {
                "id": str(annotation_id) if annotation_id is not None else f"{stem}_{n}",
                "location": text_of(item.get("dl_link")),
                "caption": text_of(item.get("description")),
                "start": first * SEGMENT,
                "end": (last + 1) * SEGMENT,
                "split": split,
                "video": video,
                "moments": [[a * SEGMENT, (b + 1) * SEGMENT] for a, b in valid],
                "_video_file": [stem, video],
                "_where": where(path, line),
            }
    if dropped:
        report.note(f"{dropped} annotators' moments that are not [first, last] segment numbers"
                    " left out of their description's moments")  # fmt: skip


def _moment(value) -> tuple[int, int] | None:
    """``(first, last)`` segment numbers, or None when ``value`` is not a valid pair."""
    if not isinstance(value, list) or len(value) != 2:
        return None
    pair = []
    for number in value:
        if isinstance(number, float) and number.is_integer():
            number = int(number)
        if not isinstance(number, int) or isinstance(number, bool):
            return None
        pair.append(number)
    first, last = pair
    if not 0 <= first <= last or (last + 1) * SEGMENT > MAX_SECONDS:
        return None
    return first, last
