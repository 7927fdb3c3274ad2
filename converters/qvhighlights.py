"""QVHighlights: ``highlight_{train,val,test}_release.jsonl``, one query per line: ``qid``,
``query``, ``duration``, ``vid`` (``<ytid>_<start>_<end>``: the 150 s clip of the YouTube
video the query is about), ``relevant_windows`` (``[[start, end], ...]`` seconds within the
clip), and for train/val ``relevant_clip_ids`` and ``saliency_scores``.

One row per query: ``id`` the ``qid``, the clip's window in the source video, the query as
caption, and the windows, clip ids and saliency scores as list columns (moment retrieval and
highlight detection are evaluated on them). Windows past the clip's ``duration`` are clamped
to it and counted, invalid ones left out and counted; a query whose clip window (``vid``) is
invalid is left out and counted with its line (``--strict`` stops at either).
"""

from __future__ import annotations

import pyarrow as pa

from . import register
from .core import (
    ConvertError,
    check_window,
    clip_window,
    expect,
    seconds,
    split_from_filename,
    text_of,
    where,
    youtube_url,
)
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
    clamped = dropped = 0
    for path in paths:
        split = options.split or split_from_filename(path)
        for line, item in read_jsonl(path, options.encoding):
            if not isinstance(item, dict) or any(k not in item for k in ("qid", "query", "vid")):
                raise ConvertError(path, "needs qid, query and vid", line)
            qid, vid = text_of(item["qid"]), text_of(item["vid"]) or ""
            expect(bool(qid), path, "an empty qid", line)
            try:
                youtube_id, start, end = clip_window(vid)
                check_window(seconds(start, "the vid's start"), seconds(end, "the vid's end"))
                duration = seconds(item.get("duration") or (end - start), "duration")
            except ValueError as exc:
                report.skip(path, line, f"qid {qid}: {exc}")
                continue
            windows = item.get("relevant_windows")
            if windows is not None:
                kept = []
                for window in windows if isinstance(windows, list) else [windows]:
                    try:
                        if not isinstance(window, list) or len(window) != 2:
                            raise ValueError(f"relevant window {window!r} is not [start, end]")
                        a, b = seconds(window[0], "start"), seconds(window[1], "end")
                        if b > duration:
                            clamped, b = clamped + 1, duration
                        kept.append(list(check_window(a, b)))
                    except ValueError as exc:
                        if report.strict:
                            report.skip(path, line, f"qid {qid}: {exc}")
                        dropped += 1
                windows = kept
            yield {
                "id": qid,
                "location": youtube_url(youtube_id),
                "caption": text_of(item["query"]),
                "start": start,
                "end": end,
                "split": split,
                "youtube_id": youtube_id,
                "vid": vid,
                "duration": duration,
                "relevant_windows": windows,
                "relevant_clip_ids": _ints(item.get("relevant_clip_ids"), 1),
                "saliency_scores": _ints(item.get("saliency_scores"), 2),
                "_clip_file": vid,
                "_video_file": youtube_id,
                "_where": where(path, line),
            }
    if clamped:
        report.note(f"{clamped} relevant windows ended past their clip's duration: clamped to it")
    if dropped:
        report.note(f"{dropped} relevant windows that are not valid [start, end] within their"
                    " clip left out of relevant_windows")  # fmt: skip


def _ints(value, depth: int):
    """``relevant_clip_ids`` (a list of ints, ``depth`` 1) or ``saliency_scores`` (a list of
    lists, ``depth`` 2) as the file has them; None when they are not of that shape, since one
    odd cell must not make the column's type refuse the other rows."""
    if depth == 0:
        ok = isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63
        return value if ok else None
    if not isinstance(value, list):
        return None
    items = [_ints(v, depth - 1) for v in value]
    return None if any(v is None for v in items) else items
