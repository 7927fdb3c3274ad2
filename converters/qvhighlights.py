"""QVHighlights: ``highlight_{train,val,test}_release.jsonl``, one query per line: ``qid``,
``query``, ``duration``, ``vid`` (``<ytid>_<start>_<end>``: the 150 s clip of the YouTube
video the query is about), ``relevant_windows`` (``[[start, end], ...]`` seconds within the
clip), and for train/val ``relevant_clip_ids`` and ``saliency_scores``.

One row per query: ``id`` the ``qid``, the clip's window in the source video, the query as
caption, and the windows, clip ids and saliency scores as list columns (moment retrieval and
highlight detection are evaluated on them). Windows past the clip's ``duration`` are clamped
to it and counted.
"""

from __future__ import annotations

import pyarrow as pa

from . import register
from .core import ConvertError, clip_window, split_from_filename, youtube_url
from .text import read_jsonl

TYPES = {
    "duration": pa.float64(),
    "relevant_windows": pa.list_(pa.list_(pa.float64())),
    "relevant_clip_ids": pa.list_(pa.int64()),
    "saliency_scores": pa.list_(pa.list_(pa.int64())),
}


@register(
    "qvhighlights",
    "QVHighlights (queries with moments)",
    "highlight_train_release.jsonl, highlight_val_release.jsonl, highlight_test_release.jsonl",
    TYPES,
)
def convert(paths, options, report):
    clamped = 0
    for path in paths:
        split = options.split or split_from_filename(path)
        for line, item in read_jsonl(path, options.encoding):
            try:
                qid, query, vid = item["qid"], item["query"], str(item["vid"])
                youtube_id, start, end = clip_window(vid)
            except (KeyError, TypeError) as exc:
                raise ConvertError(
                    path, f"needs qid, query and vid ({exc!r} missing)", line
                ) from None
            except ValueError as exc:
                raise ConvertError(path, str(exc), line) from None
            duration = float(item.get("duration") or (end - start))
            windows = item.get("relevant_windows")
            if windows is not None:
                kept = []
                for window in windows:
                    a, b = float(window[0]), float(window[1])
                    if b > duration:
                        clamped += 1
                        b = duration
                    if b > a:
                        kept.append([a, b])
                windows = kept
            yield {
                "id": str(qid),
                "location": youtube_url(youtube_id),
                "caption": str(query).strip() or None,
                "start": start,
                "end": end,
                "split": split,
                "youtube_id": youtube_id,
                "vid": vid,
                "duration": duration,
                "relevant_windows": windows,
                "relevant_clip_ids": item.get("relevant_clip_ids"),
                "saliency_scores": item.get("saliency_scores"),
                "_clip_file": vid,
                "_video_file": youtube_id,
            }
    if clamped:
        report.note(f"{clamped} relevant windows ended past their clip's duration: clamped to it")
