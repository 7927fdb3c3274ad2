"""Both decoders, on real generated videos: the exact frames and timestamps each mode gives."""

import numpy as np
import pytest
from conftest import NTSC, VFR_TIMES

from video2numpy import (
    FrameOptions,
    Resize,
    Sampling,
    Task,
    open_video,
    sample_video,
    select_frames,
)
from video2numpy.synth import frame_index

BACKENDS = ["pyav", "decord"]


def decode(path, backend, sampling, resize=None, chunk=64):
    resize = resize or Resize(224)
    video = open_video(path, backend)

    idx = select_frames(video.frame_times, sampling, video.end_time)
    parts = list(video.iter_frames(idx, resize, chunk))
    frames = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 1, 1, 3))
    times = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0)
    return idx, frames, times, video


def indices(frames):
    return [frame_index(f) for f in frames]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "name, fps, n",
    [("cfr.mp4", 30, 90), ("ntsc.mp4", NTSC, 300), ("vp9.webm", 30, 60), ("long.mp4", 30, 1200)],
)
@pytest.mark.parametrize(
    "sampling",
    [
        Sampling(fps=1),
        Sampling(num_frames=8),
        Sampling(every_nth=7),
        Sampling(fps=4, start=0.5, end=2.5),
        Sampling(num_frames=8, start=1.0, end=2.0),
    ],
    ids=["fps1", "num8", "nth7", "fps4-window", "num8-window"],
)
def test_exact_frames_and_times(videos, backend, name, fps, n, sampling):
    idx, frames, times, video = decode(videos[name], backend, sampling)
    assert len(video.frame_times) == n
    assert indices(frames) == idx.tolist()  # the pixels are the frames asked for
    np.testing.assert_allclose(times, idx / fps, atol=1e-3)  # decord keeps float32 times
    expected = {
        "fps1": np.round(np.arange(np.ceil(n / fps)) * fps).astype(int),
        "num8": np.linspace(0, n, 8, endpoint=False).astype(int),
        "nth7": np.arange(0, n, 7),
    }.get(sampling_id(sampling))
    if expected is not None:
        assert idx.tolist() == np.minimum(expected, n - 1).tolist()


def sampling_id(sampling):
    if sampling.start is not None:
        return None
    return {1.0: "fps1"}.get(sampling.fps) or (
        "num8" if sampling.num_frames == 8 else "nth7" if sampling.every_nth == 7 else None
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_variable_frame_rate(videos, backend):
    idx, frames, times, video = decode(videos["vfr.mp4"], backend, Sampling(fps=10))
    np.testing.assert_allclose(video.frame_times, VFR_TIMES, atol=1e-4)
    assert indices(frames) == idx.tolist()
    np.testing.assert_allclose(times, VFR_TIMES[idx], atol=1e-4)
    # Each pick is the frame nearest its 0.1 s grid point.
    for k, t in enumerate(times):
        assert abs(t - k / 10) <= np.abs(VFR_TIMES - k / 10).min() + 1e-6


def test_backends_agree_on_pixels(videos):
    for name in ["cfr.mp4", "vp9.webm", "portrait.mp4"]:
        a = decode(videos[name], "pyav", Sampling(num_frames=5))
        b = decode(videos[name], "decord", Sampling(num_frames=5))
        assert a[0].tolist() == b[0].tolist()
        assert a[1].shape == b[1].shape == (5, 224, 224, 3)
        diff = np.abs(a[1].astype(int) - b[1].astype(int)).mean()
        assert diff < 3, f"{name}: backends differ by {diff} grey levels on average"


@pytest.mark.parametrize("backend", BACKENDS)
def test_resize_modes(videos, backend):
    _, frames, _, _ = decode(videos["vp9.webm"], backend, Sampling(num_frames=2), Resize(224))
    assert frames.shape == (2, 224, 224, 3) and frames.dtype == np.uint8
    _, frames, _, _ = decode(videos["vp9.webm"], backend, Sampling(num_frames=2), Resize(64, "pad"))
    assert frames.shape == (2, 64, 64, 3)
    # 250x141 scaled to 64x36: 14 black rows above, 14 below, picture in between.
    assert frames[:, :13].max() == 0 and frames[:, -13:].max() == 0
    assert frames[:, 20:44].min() > 0
    assert indices(frames) == [0, 30]
    _, frames, _, _ = decode(
        videos["vp9.webm"], backend, Sampling(num_frames=2), Resize(0, "native")
    )
    assert frames.shape == (2, 141, 250, 3)


def test_crop_geometry_portrait(videos):
    # 144x256 portrait: short side (width) to 224, so height 398, centre crop rows 87..311.
    _, frames, _, _ = decode(videos["portrait.mp4"], "pyav", Sampling(num_frames=1))
    assert frames.shape == (1, 224, 224, 3)
    assert indices(frames) == [0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_chunks_are_bounded(videos, backend):
    video = open_video(videos["long.mp4"], backend)

    idx = select_frames(video.frame_times, Sampling(every_nth=10), video.end_time)
    sizes = [len(f) for f, _ in video.iter_frames(idx, Resize(32), chunk_frames=16)]
    assert max(sizes) <= 16 and sum(sizes) == 120


def test_every_frame_of_the_long_video(videos):
    idx, frames, _, _ = decode(videos["long.mp4"], "pyav", Sampling(), Resize(32))
    assert indices(frames) == list(range(1200))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "name, status, message",
    [
        ("missing.mp4", "failed_to_fetch", "no such file"),
        ("empty.mp4", "failed_to_decode", "empty (0 bytes)"),
        ("text.mp4", "failed_to_decode", "cannot open as a video"),
        ("truncated.mp4", "failed_to_decode", "cannot open as a video"),  # moov lost
        ("audio_only.m4a", "failed_to_decode", "no video stream"),
    ],
)
def test_bad_inputs_become_records(videos, tmp_path, backend, name, status, message):
    options = FrameOptions(Sampling(fps=1), backend=backend)
    chunks = list(sample_video(Task(0, videos[name]), options, str(tmp_path)))
    record = chunks[-1].record
    assert record["status"] == status and message in record["error_message"]
    assert record["n_frames"] == 0 and record["timestamps"] == []


def test_one_frame_video_and_window_past_end(videos, tmp_path):
    options = FrameOptions(Sampling(num_frames=4))
    chunks = list(sample_video(Task(0, videos["one_frame.mp4"]), options, str(tmp_path)))
    assert chunks[-1].record["status"] == "success"
    assert indices(np.concatenate([c.frames for c in chunks])) == [0, 0, 0, 0]

    late = Task(1, videos["cfr.mp4"], start=10.0, end=12.0)
    record = list(sample_video(late, options, str(tmp_path)))[-1].record
    assert record["status"] == "no_frames"
    assert "past the end of the video (3.000 s)" in record["error_message"]


def test_record_metadata(videos, tmp_path):
    options = FrameOptions(Sampling(fps=1))
    chunks = list(sample_video(Task(3, videos["ntsc.mp4"], 2.0, 6.0), options, str(tmp_path)))
    record = chunks[-1].record
    assert record["index"] == 3 and record["status"] == "success"
    assert (record["width"], record["height"], record["n_source_frames"]) == (320, 180, 300)
    assert record["source_fps"] == pytest.approx(NTSC)
    assert record["duration"] == pytest.approx(300 / NTSC, abs=1e-3)
    assert record["timestamps"] == pytest.approx([2.002, 3.003, 4.004, 5.005], abs=1e-3)
    assert record["n_frames"] == 4 and record["codec"] == "h264"


def test_sparse_sampling_seeks_instead_of_decoding_everything(videos):
    video = open_video(videos["long.mp4"], "pyav")  # 1200 frames, keyframe every 48
    idx = select_frames(video.frame_times, Sampling(num_frames=4), video.end_time)
    frames = np.concatenate([f for f, _ in video.iter_frames(idx, Resize(32))])
    assert indices(frames) == [0, 300, 600, 900]
    # Each target needs at most one GOP (48 packets) from its keyframe, plus decoder delay.
    assert video.packets_fed <= 4 * 52, video.packets_fed
