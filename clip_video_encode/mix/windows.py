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
PART_ROWS = 2_000_000  # rows per part of the partitioned steps (their scratch memory)


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
    ends). Exact: times are compared through their ranks among the kept rows' times."""
    n = len(code)
    if n == 0 or len(kept_code) == 0:
        return np.full(n, NONE, np.int64)
    order = np.lexsort((kept_start, kept_code))
    codes = kept_code[order].astype(np.int64)
    starts = np.unique(kept_start)  # a kept start < a query end <=> its rank < the query's
    width = np.int64(len(starts) + 1)
    keys = codes * width + np.searchsorted(starts, kept_start[order])
    ends = np.unique(kept_end)  # a kept end > a query start <=> ends[its rank] > it
    end_width = np.int64(len(ends))
    end_keys = codes * end_width + np.searchsorted(ends, kept_end[order])
    running = np.maximum.accumulate(end_keys)
    # where the running maximum was reached last: its row is the partner
    reached = np.maximum.accumulate(np.where(end_keys == running, np.arange(len(order)), 0))
    del end_keys
    code = code.astype(np.int64)
    last = np.searchsorted(keys, code * width + np.searchsorted(starts, end), "left") - 1
    safe = np.maximum(last, 0)
    same = (last >= 0) & (codes[safe] == code)
    latest = ends[np.clip(running[safe] - code * end_width, 0, len(ends) - 1)]
    return np.where(same & (latest > start), order[reached[safe]], NONE)


def partitioned(function, code: np.ndarray, *arrays, parts: int | None = None) -> np.ndarray:
    """``function(code, *arrays)`` run on the rows of each ``code % parts`` alone (rows of one
    source are always in one part), its row indices mapped back: the same answer with
    ``parts`` times less scratch memory. ``function`` returns, per row, an index into the
    same rows or -1."""
    n = len(code)
    parts = parts or max(1, n // PART_ROWS)
    if parts == 1:
        return function(code, *arrays)
    out = np.full(n, NONE, np.int64)
    which = (code % parts).astype(np.int16)
    for p in range(parts):
        rows = np.flatnonzero(which == p)
        found = function(code[rows], *(a[rows] for a in arrays))
        out[rows] = np.where(found >= 0, rows[np.maximum(found, 0)], NONE)
    return out


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
    return partitioned(_first_across_groups, code, start, end, group)


def _first_across_groups(code, start, end, group) -> np.ndarray:
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
    parts = max(1, len(code) // PART_ROWS)
    found = np.full(len(code), NONE, np.int64)
    for p in range(parts):  # rows of one source are in one part: less scratch memory
        rows = np.flatnonzero(code % parts == p) if parts > 1 else np.arange(len(code))
        refs = np.flatnonzero(excl_code % parts == p) if parts > 1 else np.arange(len(excl_code))
        if len(refs) == 0 or len(rows) == 0:
            continue
        hit = overlap_partner(excl_code[refs], excl_start[refs], excl_end[refs], code[rows],
                              start[rows], end[rows])  # fmt: skip
        found[rows] = np.where(hit >= 0, refs[np.maximum(hit, 0)], NONE)
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
