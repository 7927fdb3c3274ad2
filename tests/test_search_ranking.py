"""clip-video-search's ranking over a real index written by ``write_index``: the videos it
scores are chosen by the very score it ranks by (smoothed or not), so it equals brute force."""

import tempfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clip_video_encode.search import (
    MomentOptions,
    SearchIndex,
    moments_of,
    rank_moments,
    write_index,
)


def unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def index_of(folder, curves, dim=4):
    """An index whose frames score exactly ``curves`` (up to float16) against ``e0``: each
    frame is ``s * e0 + sqrt(1 - s^2) * e1``."""
    videos = []
    for v, curve in enumerate(curves):
        s = np.clip(np.asarray(curve, np.float64), -1, 1)
        frames = np.zeros((len(s), dim))
        frames[:, 0], frames[:, 1] = s, np.sqrt(1 - s**2)
        meta = {"key": f"v{v:03d}", "id": str(v), "location": None, "caption": None,
                "duration": float(len(s))}  # fmt: skip
        videos.append((meta, frames, np.arange(len(s), dtype=np.float64)))
    write_index(folder, iter(videos), {"model": "test"})
    return SearchIndex(folder), np.eye(dim)[0]


def test_a_flat_video_beats_spikes_once_smoothed(tmp_path):
    """Five videos with a single frame at 1.0, one flat at 0.6: smoothed over 5 frames the
    spikes score 0.2 and the flat video 0.6, so it is the best moment, however many spike
    videos outrank it frame by frame."""
    spike = np.zeros(30)
    spike[15] = 1.0
    index, query = index_of(str(tmp_path), [spike] * 5 + [np.full(30, 0.6)])
    scores = index.scores(query)
    (best,) = rank_moments(index, scores, top=1, options=MomentOptions(smooth=5))
    assert best.key == "v005" and best.score == pytest.approx(0.6, abs=1e-3)
    # Unsmoothed, a spike is the best moment, as before.
    assert rank_moments(index, scores, top=1)[0].score == pytest.approx(1.0, abs=1e-3)


def brute_force(index, scores, top, options):
    """Every video's moments from its own curve (the public one-curve function), sorted."""
    found = []
    for v, meta in enumerate(index.videos):
        times, curve = index.curve(v, scores)
        for start, end, score, peak in moments_of(times, curve, options)[: options.per_video]:
            found.append((-score, meta["key"], start, end, peak))
    return sorted(found)[:top]


values = st.sampled_from([0.0, 0.1, 0.25, 0.3, 0.5, 0.6, 0.61, 0.9, 1.0, -0.2])
flat = st.builds(lambda v, n: [v] * n, values, st.integers(1, 25))
spike = st.builds(lambda v, n, at: [0.0] * at + [v] + [0.0] * n, values, st.integers(0, 20),
                  st.integers(0, 20))  # fmt: skip
curves = st.lists(st.one_of(flat, spike, st.lists(values, min_size=1, max_size=25)),
                  min_size=1, max_size=30)  # fmt: skip


def random_curves(seed):
    """20-60 videos: spiky ones (low noise, a few high frames) and plateaus, values on a
    coarse grid so that ties between videos and inside curves are common."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(rng.integers(20, 61)):
        n = int(rng.integers(1, 40))
        if rng.random() < 0.5:
            c = rng.integers(0, 4, n) / 10
            c[rng.integers(0, n, rng.integers(1, 3))] = rng.integers(7, 11) / 10
        else:
            c = np.full(n, rng.integers(3, 8) / 10) + rng.integers(0, 2, n) / 20
        out.append(c)
    return out


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), top=st.integers(1, 6), smooth=st.integers(1, 8),
       per_video=st.integers(1, 3), threshold=st.sampled_from([0.0, 0.5, 0.9, 1.0]))  # fmt: skip
def test_ranking_equals_brute_force(seed, top, smooth, per_video, threshold):
    options = MomentOptions(threshold=threshold, smooth=smooth, per_video=per_video)
    with tempfile.TemporaryDirectory() as folder:
        index, query = index_of(folder, random_curves(seed))
        scores = index.scores(query)
        ours = [(-m.score, m.key, m.start_s, m.end_s, m.peak_s)
                for m in rank_moments(index, scores, top, options)]  # fmt: skip
        assert ours == brute_force(index, scores, top, options)


@settings(max_examples=25, deadline=None)
@given(curves=curves, smooth=st.integers(1, 9))
def test_smoothing_is_per_video_and_the_same_alone_or_together(curves, smooth):
    """The moving average of many videos at once equals each video's own, bit for bit, and
    equals the plain edge-padded moving average."""
    from clip_video_encode.search.moments import smooth_curves

    flat = np.concatenate([np.asarray(c, np.float32) for c in curves])
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in curves])])
    together = smooth_curves(flat, offsets, smooth)
    for v, c in enumerate(curves):
        alone = smooth_curves(np.asarray(c, np.float32), np.array([0, len(c)]), smooth)
        assert together[offsets[v] : offsets[v + 1]].tobytes() == alone.tobytes()
        k = min(smooth, len(c))
        padded = np.pad(np.asarray(c, np.float32).astype(np.float64), (k // 2, k - 1 - k // 2),
                        "edge")  # fmt: skip
        np.testing.assert_allclose(alone, np.convolve(padded, np.ones(k) / k, "valid"),
                                   atol=1e-9)  # fmt: skip


def test_many_videos_tied_at_the_cut():
    """100 videos tied at the best score: the top 3 are the 3 smallest keys, as brute force
    orders them."""
    with tempfile.TemporaryDirectory() as folder:
        index, query = index_of(folder, [np.full(5, 0.5)] * 100 + [np.full(5, 0.1)])
        scores = index.scores(query)
        moments = rank_moments(index, scores, 3, MomentOptions(smooth=3))
        assert [m.key for m in moments] == ["v000", "v001", "v002"]
        assert [m.key for m in rank_moments(index, scores, 200)][-1] == "v100"
