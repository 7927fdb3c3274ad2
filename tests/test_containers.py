"""Container and codec cases where timestamps or decoder behaviour are not the plain ones:
AV1 (a decoder that ignores per-packet skip flags), MP4 edit lists with pre-roll (trimmed
without re-encoding), and H.264 with B-frames in AVI (decode-order timestamps)."""

import av
import numpy as np
import pytest

from video2numpy import FrameOptions, Resize, Sampling, Task, open_video, sample_video
from video2numpy.synth import frame_index, trim_copy, write_video

MODES = [
    Sampling(fps=7),
    Sampling(every_nth=1),
    Sampling(every_nth=3),
    Sampling(num_frames=8),
    Sampling(fps=2, start=1.0, end=2.5),
]
MODE_IDS = ["fps7", "nth1", "nth3", "num8", "window"]


def decode(path, backend, sampling):
    video = open_video(path, backend)
    from video2numpy import select_frames

    idx = select_frames(video.frame_times, sampling, video.end_time)
    frames, times = [], []
    for f, t in video.iter_frames(idx, Resize(64), chunk_frames=16):
        frames.extend(frame_index(x) for x in f)
        times.extend(t.tolist())
    return idx, frames, np.asarray(times), video


@pytest.fixture(scope="module")
def av1(tmp_path_factory):
    if "libsvtav1" not in av.codecs_available:
        pytest.skip("no AV1 encoder in this PyAV build")
    path = str(tmp_path_factory.mktemp("av1") / "av1.mkv")
    write_video(path, n_frames=150, fps=30, width=160, height=96, codec="libsvtav1", gop=60)
    return path


@pytest.mark.parametrize("sampling", MODES, ids=MODE_IDS)
def test_av1_every_sampled_frame_comes_back(av1, sampling):
    idx, frames, times, video = decode(av1, "pyav", sampling)
    assert video.missing == 0
    assert frames == idx.tolist()
    np.testing.assert_allclose(times, idx / 30, atol=1e-3)  # Matroska times are in ms


def test_av1_record_is_complete(av1, tmp_path):
    options = FrameOptions(sampling=Sampling(every_nth=1), resize=Resize(32))
    record = list(sample_video(Task(0, av1), options, str(tmp_path)))[-1].record
    assert record["status"] == "success"
    assert record["n_frames"] == 150 and "warning" not in record


@pytest.fixture(scope="module")
def trimmed(tmp_path_factory):
    """A 10 s video (one GOP, so the cut lands mid-GOP) with its first 2.5 s cut by copy."""
    root = tmp_path_factory.mktemp("edit")
    src, dest = str(root / "src.mp4"), str(root / "trimmed.mp4")
    write_video(src, n_frames=300, fps=30, width=160, height=96, gop=300)
    trim_copy(src, dest, 2.5)
    with av.open(dest) as container:
        stream = container.streams.video[0]
        assert any(p.is_discard for p in container.demux(stream)), "no pre-roll was written"
    return dest


@pytest.mark.parametrize("backend", ["pyav", "decord"])
@pytest.mark.parametrize("sampling", MODES, ids=MODE_IDS)
def test_edit_list_times_follow_the_edit(trimmed, backend, sampling):
    idx, frames, times, video = decode(trimmed, backend, sampling)
    # 225 shown frames, the first (source frame 75) at 0 s; pre-roll is not a frame.
    assert video.meta.n_source_frames == 225
    assert video.frame_times[0] == 0.0
    assert video.missing == 0
    assert frames == (idx + 75).tolist()
    np.testing.assert_allclose(times, idx / 30, atol=1e-6)


def test_edit_list_fps1_record(trimmed, tmp_path):
    options = FrameOptions(sampling=Sampling(fps=1), resize=Resize(32))
    for backend in ("pyav", "decord"):
        options = FrameOptions(sampling=Sampling(fps=1), resize=Resize(32), backend=backend)
        record = list(sample_video(Task(0, trimmed), options, str(tmp_path)))[-1].record
        assert record["status"] == "success" and "warning" not in record
        assert record["timestamps"] == [float(s) for s in range(8)]
        assert record["n_source_frames"] == 225 and record["duration"] == 7.5


@pytest.fixture(scope="module")
def avi(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("avi") / "bframes.avi")
    write_video(path, n_frames=90, fps=30, width=160, height=96, gop=30, bframes=True)
    with av.open(path) as container:  # the case: packet times increase in decode order
        pts = [p.pts for p in container.demux(video=0) if p.size]
        assert pts == sorted(pts)
    return path


@pytest.mark.parametrize("sampling", MODES, ids=MODE_IDS)
def test_avi_with_b_frames(avi, sampling):
    idx, frames, times, video = decode(avi, "pyav", sampling)
    assert video.missing == 0
    assert frames == idx.tolist()
    np.testing.assert_allclose(times, idx / 30 + 1 / 30, atol=1e-6)  # AVI starts at frame 1


def test_same_stream_in_matroska_agrees(avi, tmp_path):
    mkv = str(tmp_path / "same.mkv")
    write_video(mkv, n_frames=90, fps=30, width=160, height=96, gop=30, bframes=True)
    for sampling in MODES[:-1]:  # no window: AVI's times start one frame later
        assert decode(avi, "pyav", sampling)[1] == decode(mkv, "pyav", sampling)[1]
