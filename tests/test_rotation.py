"""Phone videos: the display matrix is applied, so frames come out as a player shows them."""

import numpy as np
import pytest
from conftest import MODEL

from video2numpy.decode import open_video
from video2numpy.orient import from_matrix
from video2numpy.resize import Resize
from video2numpy.synth import frame_index, write_video
from video2numpy.video import FrameOptions, Task, sample_video

# (degrees counter-clockwise, hflip, vflip) as written -> (rotation, mirrored) as recorded
DISPLAYS = {
    (90, False, False): (270, False),
    (180, False, False): (180, False),
    (270, False, False): (90, False),
    (0, True, False): (0, True),
    (0, False, True): (180, True),
}
RESIZES = [Resize(mode="native"), Resize(64, "crop"), Resize(64, "pad")]


@pytest.fixture(scope="module")
def phone_videos(tmp_path_factory):
    """A portrait video stored upright, and the same shown through each display matrix."""
    root = tmp_path_factory.mktemp("phone")
    paths = {}
    for display in [(0, False, False), *DISPLAYS]:
        path = str(root / f"{'_'.join(map(str, display))}.mp4")
        write_video(path, n_frames=20, fps=10, width=96, height=160, display=display,
                    marker=True)  # fmt: skip
        paths[display] = path
    return paths


def frames_of(path, backend, resize):
    video = open_video(path, backend)
    return video, np.concatenate([f for f, _ in video.iter_frames(np.arange(20), resize)])


@pytest.mark.parametrize("backend", ["pyav", "decord"])
@pytest.mark.parametrize("display", list(DISPLAYS), ids=lambda d: "_".join(map(str, d)))
def test_frames_as_a_player_shows_them(phone_videos, display, backend):
    pytest.importorskip(backend if backend == "decord" else "av")
    for resize in RESIZES:
        _, upright = frames_of(phone_videos[(0, False, False)], backend, resize)
        video, frames = frames_of(phone_videos[display], backend, resize)
        assert (video.meta.width, video.meta.height) == (96, 160)  # as shown, not as stored
        assert (video.orientation.rotation, video.orientation.mirrored) == DISPLAYS[display]
        assert frames.shape == upright.shape
        assert np.abs(frames.astype(int) - upright).mean() < 3, resize
        side = frames.shape[1] // 12  # the white marker sits top-left, as shown
        if resize.mode == "native":  # (a crop cuts the corner off)
            assert frames[:, :side, :side].mean() > 200 and frames[:, :side, -side:].mean() < 100
        assert [frame_index(f) for f in frames] == list(range(20))


def test_both_backends_give_the_same_frames(phone_videos):
    pytest.importorskip("decord")
    for display in DISPLAYS:
        for resize in RESIZES:
            a = frames_of(phone_videos[display], "pyav", resize)[1]
            b = frames_of(phone_videos[display], "decord", resize)[1]
            assert a.shape == b.shape and np.abs(a.astype(int) - b).mean() < 3


def test_the_record_says_how_it_was_turned(phone_videos, tmp_path):
    chunks = list(sample_video(Task(0, phone_videos[(90, False, False)]), FrameOptions(),
                               str(tmp_path)))  # fmt: skip
    record = chunks[-1].record
    assert record["status"] == "success"
    assert (record["width"], record["height"]) == (96, 160)
    assert (record["rotation"], record["mirrored"]) == (270, False)
    upright = list(sample_video(Task(0, phone_videos[(0, False, False)]), FrameOptions(),
                                str(tmp_path)))[-1].record  # fmt: skip
    assert (upright["rotation"], upright["mirrored"]) == (0, False)


def test_matrices_read_as_ffmpeg_does():
    one = 1 << 16
    cases = {  # nine 16.16 integers (the last column 2.30) -> (rotation, mirrored)
        (0, one, 0, -one, 0, 0, 0, 0, 1 << 30): (90, False),  # iPhone portrait
        (0, -one, 0, one, 0, 0, 0, 0, 1 << 30): (270, False),
        (-one, 0, 0, 0, -one, 0, 0, 0, 1 << 30): (180, False),
        (one, 0, 0, 0, one, 0, 0, 0, 1 << 30): (0, False),
        (-one, 0, 0, 0, one, 0, 0, 0, 1 << 30): (0, True),
        (0, 0, 0, 0, 0, 0, 0, 0, 0): (0, False),  # degenerate: as if none
    }
    for matrix, expected in cases.items():
        got = from_matrix(matrix)
        assert (got.rotation, got.mirrored) == expected, matrix
    tilted = from_matrix((46341, 46341, 0, -46341, 46341, 0, 0, 0, 1 << 30))  # 45 degrees
    assert tilted.unsupported is not None and tilted.steps == ()


def test_embeddings_equal_those_of_the_upright_video(phone_videos, tmp_path, checkpoint):
    from clip_video_encode.cli import main
    from clip_video_encode.read import iter_samples

    order = [(0, False, False), *DISPLAYS]
    listing = tmp_path / "videos.txt"
    listing.write_text("\n".join(phone_videos[d] for d in order))
    dest = tmp_path / "out"
    assert main([str(listing), "--dest", str(dest), "--model", MODEL, "--pretrained",
                 checkpoint, "--fps", "2", "--quiet", "--workers", "1"]) == 0  # fmt: skip
    samples = list(iter_samples(str(dest)))
    upright = samples[0][1].astype(np.float32)
    for (_, embeddings, meta), display in zip(samples[1:], DISPLAYS, strict=True):
        assert (meta["rotation"], meta["mirrored"]) == DISPLAYS[display]
        assert (meta["width"], meta["height"]) == (96, 160)
        e = embeddings.astype(np.float32)
        cosine = (e * upright).sum(1) / np.linalg.norm(e, axis=1) / np.linalg.norm(upright, axis=1)
        assert cosine.min() > 0.99, (display, cosine)
