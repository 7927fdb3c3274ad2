"""Choosing shots under a length budget: the 0/1 knapsack of the summarisation literature
(values: a shot's mean frame score, weights: its length, capacity: the budget), solved
exactly, and a greedy choice for comparison."""

from __future__ import annotations

import numpy as np


def knapsack(values: np.ndarray, weights: np.ndarray, capacity: int) -> np.ndarray:
    """The exact best choice (a boolean mask over the items): the largest total value whose
    total weight is at most ``capacity``. Dynamic programming over capacities, one item at a
    time (``O(items x capacity)`` time, ``items x capacity`` bits of memory for the way
    back). Items of value <= 0 are never chosen; of two choices of equal value the one found
    first (fewer late items) is kept."""
    values = np.asarray(values, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.int64)
    if values.shape != weights.shape:
        raise ValueError("values and weights differ in length")
    if (weights < 0).any():
        raise ValueError("weights must be non-negative")
    capacity = int(capacity)
    chosen = np.zeros(len(values), dtype=bool)
    if capacity < 0 or not len(values):
        return chosen
    best = np.zeros(capacity + 1)
    took = np.zeros((len(values), capacity + 1), dtype=bool)
    for i, (v, w) in enumerate(zip(values, weights, strict=True)):
        if v <= 0 or w > capacity:
            continue
        candidate = best[: capacity + 1 - w] + v
        better = candidate > best[w:]
        took[i, w:] = better
        best[w:] = np.where(better, candidate, best[w:])
    c = capacity
    for i in range(len(values) - 1, -1, -1):
        if took[i, c]:
            chosen[i] = True
            c -= int(weights[i])
    return chosen


def fill_values(values: np.ndarray) -> np.ndarray:
    """Shot values shifted so the lowest is just above 0, when some are <= 0 (cosines can
    be): the knapsack never takes an item worth <= 0, and a summary should fill its budget
    whatever the scores' scale. The order of the values is unchanged."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) and values.min() <= 0:
        return values - values.min() + 1e-6
    return values


def greedy(values: np.ndarray, weights: np.ndarray, capacity: int) -> np.ndarray:
    """Best value first, each item taken if it still fits (``--select top``)."""
    values = np.asarray(values, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.int64)
    chosen = np.zeros(len(values), dtype=bool)
    room = int(capacity)
    for i in np.argsort(-values, kind="stable"):
        if values[i] > 0 and weights[i] <= room:
            chosen[i] = True
            room -= int(weights[i])
    return chosen
