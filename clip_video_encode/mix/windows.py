"""When two rows are the same source clip: their sources are equal and their windows overlap.

Windows are half-open ``[start, end)`` in seconds of the source video (``end`` may be
``inf``: open). By default any overlap makes two rows one clip (touching windows do not
overlap); with an IoU threshold, the intersection over the union must reach it (an open window
has an unknown length: it meets another open one at the same start, and no window else).

Rows are integers here: ``code`` (the source, as an index; equal codes are equal sources),
``start``, ``end``, ``group`` (the input the row belongs to). Same-source deduplication works
across inputs only: rows of one input that share a source are that dataset's own clips
(several labels of one Kinetics video, ActivityNet's overlapping dense captions), never
copies of each other.

:func:`overlap_partner` answers "which kept interval does each query overlap" for millions of
rows at once, exactly: times are replaced by their ranks among all times, so that ``(source,
time)`` becomes one int64 key, and one sort, a running maximum of ends and one binary search
settle every query. The general greedy (:func:`greedy`) is the reference it is tested
against, and what the other keep orders and IoU use.
"""

from __future__ import annotations

import numpy as np

NONE = -1


def overlap_partner(
    kept_code: np.ndarray,
    kept_start: np.ndarray,
    kept_end: np.ndarray,
    code: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
) -> np.ndarray:
    """For each query row, the index of a kept row with the same code whose window overlaps
    it, else -1 (the kept row with the latest end among those starting before the query
    ends)."""
    n = len(code)
    if n == 0 or len(kept_code) == 0:
        return np.full(n, NONE, np.int64)
    times = np.unique(np.concatenate([kept_start, kept_end, start, end]))
    width = np.int64(len(times))
    ks, ke = np.searchsorted(times, kept_start), np.searchsorted(times, kept_end)
    qs, qe = np.searchsorted(times, start), np.searchsorted(times, end)
    kept_code = kept_code.astype(np.int64)
    order = np.lexsort((ks, kept_code))
    codes = kept_code[order]
    keys = codes * width + ks[order]
    ends = codes * width + ke[order]
    running = np.maximum.accumulate(ends)
    # where the running maximum was reached last: its row is the partner
    reached = np.maximum.accumulate(np.where(ends == running, np.arange(len(ends)), 0))
    code = code.astype(np.int64)
    last = np.searchsorted(keys, code * width + qe, side="left") - 1
    safe = np.maximum(last, 0)
    hit = (last >= 0) & (codes[safe] == code) & (running[safe] - code * width > qs)
    return np.where(hit, order[reached[safe]], NONE)


def iou(start_a, end_a, start_b, end_b) -> np.ndarray:
    """Intersection over union of windows (arrays or numbers); open windows: see above."""
    start_a, end_a, start_b, end_b = np.broadcast_arrays(*(np.asarray(x, np.float64) for x in (
        start_a, end_a, start_b, end_b)))  # fmt: skip
    inter = np.minimum(end_a, end_b) - np.maximum(start_a, start_b)
    union = np.maximum(end_a, end_b) - np.minimum(start_a, start_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(np.isinf(union), 0.0, np.clip(inter, 0, None) / union)
    both_open = np.isinf(end_a) & np.isinf(end_b) & (start_a == start_b)
    return np.where(both_open, 1.0, out)


def meets(start_a, end_a, start_b, end_b, threshold: float | None) -> np.ndarray:
    """Whether windows are one clip: any overlap (``threshold`` None) or IoU >= threshold."""
    if threshold is None:
        return (np.asarray(start_a) < end_b) & (np.asarray(start_b) < end_a)
    return iou(start_a, end_a, start_b, end_b) >= threshold


def first_across_groups(code, start, end, group) -> np.ndarray:
    """Same-source deduplication keeping the earliest group (``--keep first``, any overlap):
    for each row, the row it duplicates, else -1. A row of group g is a duplicate when it
    overlaps a kept row of an earlier group; every row of the first group is kept."""
    partner = np.full(len(code), NONE, np.int64)
    kept = np.zeros(0, np.int64)
    for g in np.unique(group):
        rows = np.flatnonzero(group == g)
        found = overlap_partner(code[kept], start[kept], end[kept], code[rows], start[rows],
                                end[rows])  # fmt: skip
        if len(kept):
            partner[rows] = np.where(found >= 0, kept[np.maximum(found, 0)], NONE)
        kept = np.concatenate([kept, rows[found < 0]])
    return partner


def greedy(code, start, end, group, rank, threshold: float | None = None) -> np.ndarray:
    """The general rule: rows in ``rank`` order (smaller first); a row is a duplicate of the
    first kept row of another group with its source whose window meets its own. Works on
    the sources that more than one group has (only those can hold duplicates)."""
    partner = np.full(len(code), NONE, np.int64)
    code = np.asarray(code, np.int64)
    pairs = np.unique(np.stack([code, np.asarray(group, np.int64)]), axis=1)
    codes, counts = np.unique(pairs[0], return_counts=True)
    shared = codes[counts > 1]
    rows = np.flatnonzero(np.isin(code, shared))
    rows = rows[np.lexsort((rank[rows], code[rows]))]
    bounds = np.flatnonzero(np.diff(code[rows])) + 1
    for block in np.split(rows, bounds):
        kept: list[int] = []
        for r in block.tolist():
            if kept:
                k = np.asarray(kept)
                other = group[k] != group[r]
                hit = other & meets(start[k], end[k], start[r], end[r], threshold)
                if hit.any():
                    partner[r] = k[np.argmax(hit)]
                    continue
            kept.append(r)
    return partner


def excluded_partner(code, start, end, excl_code, excl_start, excl_end, level: str,
                     threshold: float | None = None) -> np.ndarray:  # fmt: skip
    """For each row, an evaluation row it leaks from, else -1. ``level`` "video": any row of
    a video the evaluation set uses; "window": only rows whose window meets one of its
    windows."""
    if len(excl_code) == 0 or len(code) == 0:
        return np.full(len(code), NONE, np.int64)
    if level == "video":
        order = np.argsort(excl_code, kind="stable")
        sorted_codes = excl_code[order]
        at = np.minimum(np.searchsorted(sorted_codes, code), len(order) - 1)
        return np.where(sorted_codes[at] == code, order[at], NONE)
    found = overlap_partner(excl_code, excl_start, excl_end, code, start, end)
    if threshold is None:
        return found
    order = np.argsort(excl_code, kind="stable")
    sorted_codes = excl_code[order]
    out = np.full(len(code), NONE, np.int64)
    for r in np.flatnonzero(found >= 0).tolist():  # IoU: among the overlapping ones
        lo, hi = np.searchsorted(sorted_codes, [code[r], code[r] + 1])
        k = order[lo:hi]
        hit = meets(excl_start[k], excl_end[k], start[r], end[r], threshold)
        if hit.any():
            out[r] = k[np.argmax(hit)]
    return out
