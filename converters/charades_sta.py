"""Charades-STA: ``charades_sta_train.txt`` / ``charades_sta_test.txt``, one moment per
line: ``VIDEOID START END##sentence`` (seconds).

One row per moment: ``id`` ``<VIDEOID>_<n>`` (the n-th moment of that video in the file),
the moment as the window, the sentence as caption. Charades videos are a download, not
URLs: ``--video-root`` finds ``<VIDEOID>.mp4``.
"""

from __future__ import annotations

from . import register
from .core import ConvertError, split_from_filename
from .text import read_lines


@register(
    "charades-sta",
    "Charades-STA (moments; needs --video-root)",
    "charades_sta_train.txt, charades_sta_test.txt",
)
def convert(paths, options, report):
    for path in paths:
        split = options.split or split_from_filename(path)
        counts: dict[str, int] = {}
        for line, text in enumerate(read_lines(path, options.encoding), 1):
            if not text.strip():
                continue
            head, sep, sentence = text.rstrip("\r\n").partition("##")
            parts = head.split()
            if not sep or len(parts) != 3:
                raise ConvertError(path, "expected 'VIDEOID START END##sentence'", line)
            video_id = parts[0]
            try:
                start, end = float(parts[1]), float(parts[2])
            except ValueError:
                raise ConvertError(
                    path, f"START and END must be seconds, got {parts[1:]}", line
                ) from None
            if end <= start:
                raise ConvertError(
                    path, f"the moment ends before it starts ({start} - {end})", line
                )
            n = counts.get(video_id, 0)
            counts[video_id] = n + 1
            yield {
                "id": f"{video_id}_{n}",
                "location": None,
                "caption": sentence.strip() or None,
                "start": start,
                "end": end,
                "split": split,
                "video_id": video_id,
                "_video_file": video_id,
            }
