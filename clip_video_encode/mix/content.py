"""Near-duplicate videos by content: pooled embeddings, k-means, pairwise cosine per cluster.

A video's embedding is the project's pooled one (:func:`pool`: the mean of its L2-normalised
frames, normalised, as ``clip-video-pool --aggregator mean``). Two videos are near-duplicates
when their cosine is at least ``1 - eps`` (a re-encode, a resize or a trim of one video is
above 0.99 with CLIP; distinct videos of one scene lower).

SemDeDup's scheme (Abbas et al., 2023): k-means on the embeddings (faiss), then every pair
inside each cluster. Within a cluster rows are taken in keep order (the order ``--keep``
gives); a row is removed when it is a near-duplicate of an earlier row that was kept, so of
every set of copies exactly the first stays (a chain a~b~c with a and c apart keeps a and c).
With one cluster this is brute-force pairwise deduplication, exactly; with k clusters a pair
split across two clusters is missed (``bench/mix.py`` measures that recall).

Rows of one group with one source (``skip``) are never compared: they are one dataset's own
clips of one video (ActivityNet's overlapping captions), already judged by their source.
Evaluation rows (``reference``) are kept by definition: a mix row near any of them is removed.

Memory: the embeddings (float16, ``rows x dim``), and per cluster a block of similarities
(``BLOCK x COLUMNS`` float32): it does not grow with the number of shards, and grows with the
number of rows only by their embeddings. The cost is the sum of squared cluster sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK = 1024  # rows of a cluster compared at once
COLUMNS = 16384  # earlier rows a block is compared with at once
NONE = -1


def pool(frames: np.ndarray) -> np.ndarray:
    """The pooled video embedding of ``(n_frames, dim)`` frame embeddings (float32, unit
    length; zeros for no frames): the mean of the normalised frames, normalised."""
    x = np.asarray(frames, np.float32)
    if len(x) == 0:
        return np.zeros(x.shape[1], np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    mean = x.mean(0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


@dataclass
class ContentResult:
    """Per mix row: the row it duplicates (-1: none), and the cosine to it; per mix row also
    the evaluation row it leaks from (-1: none) and that cosine; ``nearest`` the highest
    cosine to any earlier row of its cluster (NaN: none), ``nearest_reference`` to any
    evaluation row of its cluster: the distributions a user picks ``eps`` from."""

    partner: np.ndarray
    cosine: np.ndarray
    reference_partner: np.ndarray
    reference_cosine: np.ndarray
    nearest: np.ndarray
    nearest_reference: np.ndarray
    clusters: int


def cluster(embeddings: np.ndarray, k: int, seed: int = 0, sample: int = 256) -> np.ndarray:
    """A cluster label per row: spherical k-means (faiss) trained on at most ``k * sample``
    rows, then each row's nearest centroid by inner product, in blocks."""
    n = len(embeddings)
    if k <= 1 or n <= k:
        return np.zeros(n, np.int64) if k <= 1 else np.arange(n, dtype=np.int64)
    import faiss

    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(n, min(n, k * sample), replace=False))
    train = np.ascontiguousarray(embeddings[picked], np.float32)
    kmeans = faiss.Kmeans(train.shape[1], k, niter=20, seed=seed, spherical=True,
                          max_points_per_centroid=sample, verbose=False)  # fmt: skip
    kmeans.train(train)
    index = faiss.IndexFlatIP(train.shape[1])
    index.add(kmeans.centroids)
    labels = np.empty(n, np.int64)
    for lo in range(0, n, 65536):
        block = np.ascontiguousarray(embeddings[lo : lo + 65536], np.float32)
        labels[lo : lo + len(block)] = index.search(block, 1)[1][:, 0]
    return labels


def deduplicate(
    embeddings: np.ndarray,
    rank: np.ndarray,
    eps: float,
    k: int = 1,
    group: np.ndarray | None = None,
    source: np.ndarray | None = None,
    reference: np.ndarray | None = None,
    seed: int = 0,
    labels: np.ndarray | None = None,
) -> ContentResult:
    """SemDeDup over ``embeddings`` (unit rows, any float dtype), kept in ``rank`` order
    (smaller first). ``group``/``source``: pairs with equal group and source are skipped.
    ``reference``: evaluation embeddings (unit rows), clustered with the rows."""
    n = len(embeddings)
    reference = np.zeros((0, embeddings.shape[1]), np.float32) if reference is None else reference
    group = np.zeros(n, np.int64) if group is None else np.asarray(group)
    source = np.arange(n) if source is None else np.asarray(source)
    if labels is None:
        both = np.concatenate([embeddings, reference]) if len(reference) else embeddings
        labels = cluster(both, k, seed)
    row_labels, ref_labels = labels[:n], labels[n:]
    result = ContentResult(
        np.full(n, NONE, np.int64), np.full(n, np.nan, np.float32),
        np.full(n, NONE, np.int64), np.full(n, np.nan, np.float32),
        np.full(n, np.nan, np.float32), np.full(n, np.nan, np.float32),
        int(labels.max()) + 1 if len(labels) else 0,
    )  # fmt: skip
    threshold = np.float32(1.0 - eps)
    order = np.lexsort((rank, row_labels))
    bounds = np.flatnonzero(np.diff(row_labels[order])) + 1
    ref_order = np.argsort(ref_labels, kind="stable")
    ref_sorted = ref_labels[ref_order]
    for members in np.split(order, bounds):
        if len(members) == 0:
            continue
        label = row_labels[members[0]]
        lo, hi = np.searchsorted(ref_sorted, [label, label + 1])
        _against_reference(embeddings, reference, members, ref_order[lo:hi], threshold, result)
        _within(embeddings, members, group, source, threshold, result)
    return result


def _f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, np.float32)


def _against_reference(embeddings, reference, members, refs, threshold, result) -> None:
    if len(refs) == 0:
        return
    for lo in range(0, len(members), BLOCK):
        rows = members[lo : lo + BLOCK]
        x = _f32(embeddings[rows])
        best = np.full(len(rows), -np.inf, np.float32)
        arg = np.zeros(len(rows), np.int64)
        for clo in range(0, len(refs), COLUMNS):
            cols = refs[clo : clo + COLUMNS]
            sims = x @ _f32(reference[cols]).T
            j = sims.argmax(1)
            value = sims[np.arange(len(rows)), j]
            better = value > best
            best[better], arg[better] = value[better], cols[j[better]]
        result.nearest_reference[rows] = best
        hit = best >= threshold
        result.reference_partner[rows[hit]] = arg[hit]
        result.reference_cosine[rows[hit]] = best[hit]


def _within(embeddings, members, group, source, threshold, result) -> None:
    """Greedy within one cluster, ``members`` in keep order. Rows already removed against
    the evaluation set take no part (they are gone whatever else they match)."""
    alive = members[result.reference_partner[members] < 0]
    everything = _f32(embeddings[alive])  # the cluster, once (its rows in keep order)
    kept = np.zeros(len(alive), bool)
    for lo in range(0, len(alive), BLOCK):
        rows = alive[lo : lo + BLOCK]
        x = everything[lo : lo + BLOCK]
        nearest = np.full(len(rows), -np.inf, np.float32)
        best_kept = np.full(len(rows), -np.inf, np.float32)
        arg_kept = np.full(len(rows), NONE, np.int64)
        for clo in range(0, lo, COLUMNS):  # earlier blocks
            chi = min(clo + COLUMNS, lo)
            cols = alive[clo:chi]
            sims = x @ everything[clo:chi].T
            sims[_skipped(rows, cols, group, source)] = -np.inf
            nearest = np.maximum(nearest, sims.max(1))
            sims[:, ~kept[clo:chi]] = -np.inf
            j = sims.argmax(1)
            value = sims[np.arange(len(rows)), j]
            better = value > best_kept
            best_kept[better], arg_kept[better] = value[better], cols[j[better]]
        sims = x @ x.T  # within the block: row i against earlier rows j < i
        sims[_skipped(rows, rows, group, source)] = -np.inf
        sims[np.tril_indices(len(rows))] = -np.inf  # keep only j < i (transposed below)
        sims = sims.T  # sims[i, j]: row i against earlier row j
        if len(rows) > 1:
            nearest = np.maximum(nearest, sims.max(1))
        removed = best_kept >= threshold
        partner = np.where(removed, arg_kept, NONE)
        cosine = np.where(removed, best_kept, np.nan)
        for i in range(len(rows)):  # in keep order: a kept row removes its later copies
            if removed[i]:
                continue
            kept[lo + i] = True
            later = np.flatnonzero(~removed[i + 1 :] & (sims[i + 1 :, i] >= threshold))
            if len(later):
                later += i + 1
                removed[later], partner[later] = True, rows[i]
                cosine[later] = sims[later, i]
        result.partner[rows] = partner
        result.cosine[rows] = cosine
        result.nearest[rows] = np.where(np.isfinite(nearest), nearest, np.nan)


def _skipped(rows, cols, group, source) -> np.ndarray:
    """Pairs of one group and one source: that dataset's own clips of one video."""
    return (group[rows][:, None] == group[cols][None, :]) & (
        source[rows][:, None] == source[cols][None, :])  # fmt: skip


def brute_force(embeddings, rank, eps, group=None, source=None) -> np.ndarray:
    """The reference: every pair, rows in keep order, a row removed when a kept earlier row
    is within eps. Returns the partner per row (-1: kept). For tests and the benchmark."""
    n = len(embeddings)
    group = np.zeros(n, np.int64) if group is None else np.asarray(group)
    source = np.arange(n) if source is None else np.asarray(source)
    x = np.asarray(embeddings, np.float32)
    order = np.argsort(rank, kind="stable")
    partner = np.full(n, NONE, np.int64)
    kept: list[int] = []
    for r in order.tolist():
        if kept:
            k = np.asarray(kept)
            sims = x[k] @ x[r]
            sims[(group[k] == group[r]) & (source[k] == source[r])] = -np.inf
            j = int(sims.argmax())
            if sims[j] >= 1.0 - eps:
                partner[r] = k[j]
                continue
        kept.append(r)
    return partner
