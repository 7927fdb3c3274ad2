"""The summarisation metrics: keyshot F-score against each annotator's summary, and the rank
correlations (Kendall's tau, Spearman's rho) between predicted frame scores and each
annotator's scores, which Otani et al. (CVPR 2019) showed to be the meaningful ones: random
summaries reach F-scores close to published methods, random scores no correlation."""

from __future__ import annotations

import itertools

import numpy as np
from scipy.stats import kendalltau, rankdata, spearmanr


def shot_bounds(change_points: np.ndarray) -> np.ndarray:
    """``(shots, 2)`` inclusive frame ranges as half-open starts and ends: ``(shots + 1,)``."""
    points = np.asarray(change_points, dtype=np.int64)
    return np.append(points[:, 0], points[-1, 1] + 1)


def f_score(predicted: np.ndarray, reference: np.ndarray) -> float:
    """Harmonic mean of precision and recall of the frames in both summaries, in percent."""
    overlap = float(np.logical_and(predicted, reference).sum())
    if overlap == 0:
        return 0.0
    precision = overlap / float(predicted.sum())
    recall = overlap / float(reference.sum())
    return 100.0 * 2 * precision * recall / (precision + recall)


def f_against_users(predicted: np.ndarray, users: np.ndarray, mode: str) -> float:
    """The F-score against each annotator's summary, averaged (TVSum's ``avg``) or the best
    of them (SumMe's ``max``)."""
    scores = [f_score(predicted, u) for u in users]
    return float(np.max(scores) if mode == "max" else np.mean(scores))


def rank_correlations(predicted: np.ndarray, users: np.ndarray) -> tuple[float, float]:
    """Kendall's tau-b and Spearman's rho of the predicted frame scores with each annotator's,
    averaged over annotators. A constant prediction (no ranking at all) counts as 0."""
    taus, rhos = [], []
    for user in users:
        if np.ptp(predicted) == 0 or np.ptp(user) == 0:
            taus.append(0.0)
            rhos.append(0.0)
            continue
        taus.append(float(kendalltau(predicted, user).statistic))
        rhos.append(float(spearmanr(predicted, user).statistic))
    return float(np.mean(taus)), float(np.mean(rhos))


MAX_LEVELS = 64


class UserRanks:
    """An annotator set's scores prepared once, so that the correlations of many untied
    predictions (the random baseline's draws) with all of them take ``O(frames x levels)``
    each, every annotator at once, instead of a sort per annotator: tau-b from counts of
    earlier frames at lower score levels, rho as Pearson's r of the ranks."""

    def __init__(self, users: np.ndarray) -> None:
        self.users = np.asarray(users, dtype=np.float64)
        n = self.users.shape[1]
        ranks = np.stack([rankdata(u) for u in self.users])
        centred = ranks - ranks.mean(axis=1, keepdims=True)
        norms = np.linalg.norm(centred, axis=1)
        self.rank_rows = centred / np.where(norms > 0, norms, 1.0)[:, None]
        self.constant = norms == 0
        levels = [np.unique(u, return_inverse=True) for u in self.users]
        self.discrete = np.array([len(v) <= MAX_LEVELS for v, _ in levels]) & ~self.constant
        self.codes = np.stack([inv for _, inv in levels]).astype(np.int32)
        self.n_levels = max((len(v) for (v, _), d in zip(levels, self.discrete, strict=True) if d),
                            default=1)  # fmt: skip
        self.pairs = n * (n - 1) / 2
        counts = [np.bincount(inverse) for _, inverse in levels]
        self.ties = np.array([(c * (c - 1) / 2).sum() for c in counts])
        self.denominators = np.sqrt(self.pairs * np.maximum(self.pairs - self.ties, 1e-12))

    def correlations(self, untied: np.ndarray) -> tuple[float, float]:
        """Mean tau-b and rho over annotators of a prediction without ties."""
        n = len(untied)
        order = np.argsort(untied, kind="stable")
        x_ranks = np.empty(n)
        x_ranks[order] = np.arange(n)
        x_ranks -= x_ranks.mean()
        x_ranks /= max(np.linalg.norm(x_ranks), 1e-12)
        rhos = np.where(self.constant, 0.0, self.rank_rows @ x_ranks)
        taus = np.zeros(len(self.users))
        discrete = np.flatnonzero(self.discrete)
        if len(discrete):
            # Concordant pairs: for each frame, the earlier frames (lower x) at a lower level;
            # with x untied every other pair not tied in y is discordant.
            codes = self.codes[discrete][:, order]  # annotators x frames, in the order of x
            concordant = np.zeros(len(discrete), dtype=np.int64)
            for level in range(1, self.n_levels):
                lower = np.cumsum(codes < level, axis=1, dtype=np.int32)
                concordant += np.where(codes == level, lower, 0).sum(axis=1, dtype=np.int64)
            untied_pairs = self.pairs - self.ties[discrete]
            taus[discrete] = (2 * concordant - untied_pairs) / self.denominators[discrete]
        for u in np.flatnonzero(~self.discrete & ~self.constant):  # near-continuous scores
            taus[u] = kendalltau(untied, self.users[u]).statistic
        return float(np.mean(taus)), float(np.mean(rhos))

    def pairwise(self) -> tuple[float, float]:
        """Mean tau-b and rho over every pair of annotators (the human baseline's
        correlations): tau-b from each pair's table of level counts, rho from the ranks."""
        taus, rhos = [], []
        for i, j in itertools.combinations(range(len(self.users)), 2):
            if self.constant[i] or self.constant[j]:
                taus.append(0.0)
                rhos.append(0.0)
                continue
            rhos.append(float(self.rank_rows[i] @ self.rank_rows[j]))
            if self.discrete[i] and self.discrete[j]:
                taus.append(_tau_b_table(self.codes[i], self.codes[j], self.n_levels))
            else:
                taus.append(float(kendalltau(self.users[i], self.users[j]).statistic))
        return float(np.mean(taus)), float(np.mean(rhos))


def _tau_b_table(a: np.ndarray, b: np.ndarray, levels: int) -> float:
    """Kendall's tau-b of two discrete sequences from their contingency table: a cell's
    concordant partners lie below and right of it, its discordant ones below and left."""
    table = np.bincount(a * levels + b, minlength=levels * levels).reshape(levels, levels)
    table = table.astype(np.float64)
    below = np.cumsum(table[::-1], axis=0)[::-1]  # rows >= i
    below = np.vstack([below[1:], np.zeros((1, levels))])  # rows > i
    right = np.cumsum(below[:, ::-1], axis=1)[:, ::-1]  # columns >= j
    right = np.hstack([right[:, 1:], np.zeros((levels, 1))])  # columns > j
    left = np.cumsum(below, axis=1)  # columns <= j
    left = np.hstack([np.zeros((levels, 1)), left[:, :-1]])  # columns < j
    concordant = float((table * right).sum())
    discordant = float((table * left).sum())
    n = len(a)
    pairs = n * (n - 1) / 2
    rows, cols = table.sum(axis=1), table.sum(axis=0)
    ties_a = float((rows * (rows - 1) / 2).sum())
    ties_b = float((cols * (cols - 1) / 2).sum())
    denominator = np.sqrt((pairs - ties_a) * (pairs - ties_b))
    return (concordant - discordant) / denominator if denominator > 0 else 0.0
