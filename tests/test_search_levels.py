"""Search's clip and segment levels cut each video's row span exactly as clip-video-hierarchy
does: windows from the row's start, the last one ending at the row's end."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clip_video_encode.search import SearchIndex, write_index
from clip_video_encode.search.levels import rank_clips, rank_segments


def unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def row_video(tmp_path, start=30.5, end=41.0, hot=(38.5, 41.0)):
    """One row windowed to [start, end), a frame every 0.5 s; the frames in ``hot`` match
    the query (score 1), the others not (score 0)."""
    times = np.arange(start, end, 0.5)
    q = np.eye(4)[0]
    frames = np.where(((times >= hot[0]) & (times < hot[1]))[:, None], q, np.eye(4)[1])
    meta = {"key": "row", "id": "r", "location": None, "caption": None, "duration": 60.0,
            "start": start, "end": end}  # fmt: skip
    write_index(str(tmp_path), iter([(meta, frames, times)]), {})
    index = SearchIndex(str(tmp_path))
    return index, index.scores(q)


def test_clip_windows_start_at_the_rows_start_and_end_at_its_end(tmp_path):
    index, scores = row_video(tmp_path)
    (best,) = rank_clips(index, scores, top=1)
    assert (best.start_s, best.end_s) == (38.5, 41.0)  # the last window, cut at the row's end
    assert best.score == pytest.approx(1.0, abs=1e-3) and best.peak_s == 38.5
    every = rank_clips(index, scores, top=10, per_video=10)
    assert sorted((m.start_s, m.end_s) for m in every) == [(30.5, 34.5), (34.5, 38.5),
                                                           (38.5, 41.0)]  # fmt: skip


def test_segments_are_cut_from_the_rows_start(tmp_path):
    index, scores = row_video(tmp_path, start=30.5, end=41.0, hot=(35.5, 36.5))
    (moment, lo, hi), *rest = rank_segments(index, scores, top=3, segment_seconds=6.0,
                                            clip_seconds=2.0)  # fmt: skip
    assert (lo, hi) == (30.5, 36.5) and (moment.start_s, moment.end_s) == (35.5, 36.5)
    assert [(s_lo, s_hi) for _, s_lo, s_hi in rest] == [(36.5, 41.0)]


@settings(max_examples=60, deadline=None)
@given(
    start=st.sampled_from([0.0, 0.1, 0.3, 7.25, 30.5, 1e5 + 0.7]),
    length=st.sampled_from([0.05, 0.3, 1.0, 3.9999999, 4.0, 4.0000001, 10.5, 41.0, 180.1]),
    seconds=st.sampled_from([0.1, 0.3, 1.0, 4.0, 180.0]),
    offsets=st.lists(st.floats(-2.0, 1.2), min_size=1, max_size=40),
)
def test_search_and_hierarchy_put_every_frame_in_the_same_window(start, length, seconds, offsets):
    """Frames anywhere (on edges, before the start, at and after the end): search's window
    numbers are the hierarchy's windows for them."""
    from clip_video_encode.hierarchy.windows import clip_edges, window_numbers, window_of

    end = start + length
    edges = clip_edges(start, end, seconds)
    times = np.concatenate([start + np.asarray(offsets) * length, edges, [end, start]])
    lo, hi = np.full(len(times), start), np.full(len(times), end)
    assert window_numbers(times, lo, hi, seconds).tolist() == window_of(times, edges).tolist()
