"""Charades-STA: ``charades_sta_train.txt`` / ``charades_sta_test.txt``, one moment per
line: ``VIDEOID START END##sentence`` (seconds).

One row per moment: ``id`` ``<VIDEOID>_<n>`` (the n-th moment of that video in the file,
counting lines left out), the moment as the window, the sentence as caption. Charades videos
are a download, not URLs: ``--video-root`` finds ``<VIDEOID>.mp4``. The real train file has
moments that end before they start (3 of 12,408 lines): they are left out and counted
(``--strict`` stops at the first).
"""

from __future__ import annotations

from . import register
from .core import ConvertError, split_from_filename, where, window
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
            n = counts.get(video_id, 0)  # lines left out keep their number: ids stay put
            counts[video_id] = n + 1
            try:
                start, end = window(parts[1], parts[2])
            except ValueError as exc:
                report.skip(path, line, str(exc))
                continue
            yield {
                "id": f"{video_id}_{n}",
                "location": None,
                "caption": sentence.strip() or None,
                "start": start,
                "end": end,
                "split": split,
                "video_id": video_id,
                "_video_file": video_id,
                "_where": where(path, line),
            }
