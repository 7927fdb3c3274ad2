"""The summarisation metrics: keyshot F-score against each annotator's summary, and the rank
correlations (Kendall's tau, Spearman's rho) between predicted frame scores and each
annotator's scores, which Otani et al. (CVPR 2019) showed to be the meaningful ones: random
summaries reach F-scores close to published methods, random scores no correlation."""

from __future__ import annotations

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
    each instead of a sort per annotator: tau-b from concordance counts per score level,
    rho as Pearson's r of the ranks."""

    def __init__(self, users: np.ndarray) -> None:
        self.users = np.asarray(users, dtype=np.float64)
        n = self.users.shape[1]
        ranks = np.stack([rankdata(u) for u in self.users])
        centred = ranks - ranks.mean(axis=1, keepdims=True)
        norms = np.linalg.norm(centred, axis=1)
        self.rank_rows = centred / np.where(norms > 0, norms, 1.0)[:, None]
        self.constant = norms == 0
        self.levels = [np.unique(u, return_inverse=True) for u in self.users]
        pairs = n * (n - 1) / 2
        self.tie_pairs = [
            float((np.bincount(inv) * (np.bincount(inv) - 1) / 2).sum()) for _, inv in self.levels
        ]
        self.pairs = pairs

    def correlations(self, untied: np.ndarray) -> tuple[float, float]:
        """Mean tau-b and rho over annotators of a prediction without ties."""
        order = np.argsort(untied, kind="stable")
        x_ranks = np.empty(len(untied))
        x_ranks[order] = np.arange(len(untied))
        x_ranks -= x_ranks.mean()
        x_ranks /= max(np.linalg.norm(x_ranks), 1e-12)
        rhos = np.where(self.constant, 0.0, self.rank_rows @ x_ranks)
        taus = []
        for (values, inverse), ties, constant in zip(
            self.levels, self.tie_pairs, self.constant, strict=True
        ):
            if constant:
                taus.append(0.0)
                continue
            if len(values) > MAX_LEVELS:  # near-continuous scores: one sort is cheaper
                taus.append(float(kendalltau(untied, values[inverse]).statistic))
                continue
            level = inverse[order]
            onehot = np.zeros((len(level), len(values)))
            onehot[np.arange(len(level)), level] = 1.0
            before = np.cumsum(onehot, axis=0) - onehot  # earlier (lower x) at each level
            below = np.cumsum(before, axis=1) - before  # ... at a lower level
            above = before.sum(axis=1, keepdims=True) - np.cumsum(before, axis=1)
            rows = np.arange(len(level))
            concordant = below[rows, level].sum()
            discordant = above[rows, level].sum()
            taus.append(
                float((concordant - discordant) / np.sqrt(self.pairs * (self.pairs - ties)))
            )
        return float(np.mean(taus)), float(np.mean(rhos))
