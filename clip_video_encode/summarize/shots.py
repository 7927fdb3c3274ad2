"""Shots: kernel temporal segmentation (KTS, Potapov et al., ECCV 2014) of a video's frame
embeddings, or fixed-length shots.

KTS cuts a sequence where its content changes: it minimises the within-shot scatter of the
(L2-normalised) embeddings, ``sum_t |x_t|^2 - |sum_t x_t|^2 / len`` over each shot (the linear
kernel on cosine-normalised features, as the summarisation literature runs it, e.g. DSNet),
plus a penalty on the number of change points ``m`` that KTS's ``cpd_auto`` adds to the
per-frame cost: ``m / (2N) * (log(N / m) + 1)`` with ``vmax = 1``.

KTS's own solver computes the best segmentation for every ``m`` (``O(m N^2)``): hours for an
hour-long video at 4 fps. This one reaches the same choice in ``O(N * lmax)`` per pass:

- the best segmentation for a *constant* penalty ``beta`` per change point is solved exactly
  by dynamic programming over shots of at most ``lmax`` frames (the band of the kernel matrix
  that holds them is computed block by block from prefix sums of the embeddings);
- the segmentations it gives for the different ``beta`` are the lower convex hull of KTS's
  cost curve, and on it KTS's criterion is at its minimum where ``beta`` equals the
  criterion's marginal penalty ``1/2 log(N / m)``: iterated from ``m`` to ``beta`` and back
  to a fixed point (a few passes), the best criterion among the passes is kept.

This is KTS's choice whenever the cost curve is convex, as it is in practice (tested against
the all-``m`` dynamic programme). ``ruptures``' kernel change-point detection solves the
constant-penalty problem too, but without a bound on shot length it is quadratic: 15 s per
penalty for a 14,400-frame video with three shots on this machine.
"""

from __future__ import annotations

import math

import numpy as np

BLOCK = 512  # rows of the kernel band computed at once


def kts(
    embeddings: np.ndarray,
    max_shot: int | None = None,
    min_shot: int = 1,
    max_passes: int = 12,
) -> np.ndarray:
    """Change points of ``embeddings`` (N, D): the sorted indices where a new shot starts
    (the first shot, starting at 0, not listed). ``max_shot`` bounds a shot's length in
    frames (default: no bound, quadratic memory and time: give one for long videos)."""
    x = np.asarray(embeddings, dtype=np.float64)
    n = len(x)
    if n <= 1:
        return np.zeros(0, dtype=np.int64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    lmax = n if max_shot is None else max(int(max_shot), 1)
    lmin = max(int(min_shot), 1)
    if lmin > lmax:
        raise ValueError(f"min_shot {lmin} > max_shot {lmax}")
    costs = _band_costs(x, lmax)

    def criterion(m: int, cost: float) -> float:
        return cost / n + (m / (2.0 * n) * (math.log(n / m) + 1.0) if m else 0.0)

    seen: dict[int, tuple[float, np.ndarray]] = {}

    def solve(betas: np.ndarray) -> int:
        for points, cost in _segment(costs, betas, lmin):
            seen.setdefault(len(points), (cost, points))
        return len(points)

    # The criterion is not convex in m (its penalty is concave): a coarse sweep of the hull,
    # from many short shots (beta near 0) to few, then the fixed point from the best of it.
    solve(np.geomspace(1e-3, 0.5 * math.log(n), 12))
    if lmax >= n:  # one shot for the whole video is a valid segmentation too
        seen.setdefault(0, (_whole_cost(x), np.zeros(0, dtype=np.int64)))
    m = min(seen, key=lambda m: criterion(m, seen[m][0]))
    for _ in range(max_passes):
        if m == 0:
            break
        m_next = solve(np.array([0.5 * math.log(n / m)]))
        if m_next == m:
            break
        m = m_next
    best = min(seen, key=lambda m: criterion(m, seen[m][0]))
    return seen[best][1]


def fixed_shots(timestamps: np.ndarray, seconds: float) -> np.ndarray:
    """Change points every ``seconds`` of video time: the first frame at or after each
    multiple of ``seconds`` starts a shot."""
    if seconds <= 0:
        raise ValueError(f"shot length must be positive, got {seconds}")
    times = np.asarray(timestamps, dtype=np.float64)
    if len(times) == 0:
        return np.zeros(0, dtype=np.int64)
    edges = np.arange(seconds, times[-1] + seconds, seconds)
    points = np.unique(np.searchsorted(times, edges - 1e-9))
    return points[(points > 0) & (points < len(times))].astype(np.int64)


def _whole_cost(x: np.ndarray) -> float:
    s = x.sum(axis=0)
    return float((x * x).sum() - s @ s / len(x))


def _band_costs(x: np.ndarray, lmax: int) -> np.ndarray:
    """``cost[t, k]``: the scatter of the shot of ``k`` frames that ends before frame ``t``
    (frames ``t-k .. t-1``), for ``1 <= k <= lmax``; ``inf`` where it would start before 0."""
    n, _ = x.shape
    prefix = np.zeros((n + 1, x.shape[1]))
    np.cumsum(x, axis=0, out=prefix[1:])
    squares = np.concatenate([[0.0], np.cumsum((x * x).sum(axis=1))])
    costs = np.full((n + 1, lmax + 1), np.inf)
    ks = np.arange(1, lmax + 1)
    for t0 in range(1, n + 1, BLOCK):
        t1 = min(t0 + BLOCK, n + 1)
        lo = max(0, t0 - lmax)
        # Shifted to the window's first prefix: the same differences, smaller numbers.
        window = prefix[lo:t1] - prefix[lo]
        norms = (window * window).sum(axis=1)
        rows = window[t0 - lo :]
        dots = rows @ window.T  # (t1 - t0, t1 - lo)
        t = np.arange(t0, t1)[:, None]
        s = t - ks[None, :]
        valid = s >= 0
        si = np.where(valid, s - lo, 0)
        ri = (t - t0).repeat(lmax, axis=1)
        dist = norms[t - lo] + norms[si] - 2.0 * dots[ri, si]
        scatter = squares[t] - squares[np.where(valid, s, 0)] - dist / ks[None, :]
        costs[t0:t1, 1:] = np.where(valid, np.maximum(scatter, 0.0), np.inf)
    return costs


def _segment(costs: np.ndarray, betas: np.ndarray, lmin: int) -> list[tuple[np.ndarray, float]]:
    """The exact best segmentation for each penalty in ``betas`` (per change point): its change
    points and its total scatter (penalty excluded). All penalties advance together, one
    frame at a time, so a sweep costs little more than one solve."""
    n = costs.shape[0] - 1
    lmax = costs.shape[1] - 1
    betas = np.asarray(betas, dtype=np.float64)[:, None]
    best = np.full((len(betas), n + 1), np.inf)
    best[:, 0] = -betas[:, 0]  # the first shot pays no change point
    back = np.zeros((len(betas), n + 1), dtype=np.int64)
    ks = np.arange(lmin, lmax + 1)
    rows = np.arange(len(betas))
    for t in range(lmin, n + 1):
        k = ks[: t - lmin + 1] if t < lmax else ks
        total = best[:, t - k] + costs[t, k]
        j = np.argmin(total, axis=1)
        best[:, t] = total[rows, j] + betas[:, 0]
        back[:, t] = t - k[j]
    found = []
    for b in range(len(betas)):
        points, t, scatter = [], n, 0.0
        while t > 0:
            s = int(back[b, t])
            scatter += costs[t, t - s]
            if s > 0:
                points.append(s)
            t = s
        found.append((np.array(points[::-1], dtype=np.int64), float(scatter)))
    return found
