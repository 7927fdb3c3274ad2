"""Raw elementary streams (.h264, .hevc, .m2v, ...): no container, so no timestamps, or only
what FFmpeg's parser guesses. Frames are timed by the stream's frame rate and matched in the
decoder's output order; the record says the times were derived."""

import json
from fractions import Fraction

import av
import numpy as np
import pytest

from video2numpy import FrameOptions, Resize, Sampling, Task, sample_video
from video2numpy.cli import main
from video2numpy.synth import frame_image, frame_index

N, FPS = 60, 30


def write_raw(path, codec, options, n=N, fps=FPS):
    """``n`` index-coded frames as a raw stream; the file's suffix picks FFmpeg's raw muxer.
    B-frames (``bf``) make decode order differ from display order."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.options = options
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(frame_image(i, 96, 64), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


RAW = [
    ("v.h264", "libx264", {"bf": "3", "g": "24"}),
    ("v.hevc", "libx265", {"x265-params": "log-level=error:bframes=3:keyint=24"}),
    ("v.h265", "libx265", {"x265-params": "log-level=error:bframes=0:keyint=24"}),
    ("v.m2v", "mpeg2video", {"bf": "2", "g": "12", "b": "4M"}),
    ("v.m1v", "mpeg1video", {"bf": "2", "g": "12", "b": "4M"}),
]


def run(path, sampling, backend="pyav"):
    options = FrameOptions(sampling, Resize(32), backend=backend)
    chunks = list(sample_video(Task(0, str(path)), options, str(path.parent)))
    frames = [c.frames for c in chunks if len(c.frames)]
    frames = np.concatenate(frames) if frames else np.zeros((0, 32, 32, 3), np.uint8)
    return frames, chunks[-1].record


@pytest.mark.parametrize("name, codec, options", RAW, ids=[r[0] for r in RAW])
@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_raw_stream_frames_and_times(tmp_path, name, codec, options, backend):
    path = tmp_path / name
    write_raw(path, codec, options)
    frames, record = run(path, Sampling(every_nth=7), backend)
    assert record["status"] == "success", record["error_message"]
    assert record["n_source_frames"] == N and record["source_fps"] == FPS
    assert [frame_index(f) for f in frames] == list(range(0, N, 7))  # in display order
    np.testing.assert_allclose(record["timestamps"], np.arange(0, N, 7) / FPS, atol=1e-6)
    assert "derived" in record["warning"] and f"{FPS:g} fps" in record["warning"]
    # Sampling by time works on the derived times: one frame each half second.
    frames, record = run(path, Sampling(fps=2, start=0.5))
    assert [frame_index(f) for f in frames] == [15, 30, 45]
    assert record["timestamps"] == [0.5, 1.0, 1.5]


def test_raw_stream_through_the_cli(tmp_path):
    path = tmp_path / "clip.h264"
    write_raw(path, "libx264", {"bf": "3"})
    dest = tmp_path / "out"
    assert main([str(path), "--dest", str(dest), "--num-frames", "4", "--workers", "0"]) == 0
    record = json.loads((dest / "clip.json").read_text())
    assert record["timestamps"] == [0.0, 0.5, 1.0, 1.5] and record["codec"] == "h264"
    assert "no timestamps" in record["warning"]
    assert [frame_index(f) for f in np.load(dest / "clip.npy")] == [0, 15, 30, 45]


def test_a_container_with_timestamps_is_not_derived(tmp_path):
    """IVF carries a timestamp per frame: those are used, and no warning is written."""
    path = tmp_path / "v.ivf"
    write_raw(path, "libvpx-vp9", {"deadline": "realtime", "cpu-used": "8"})
    frames, record = run(path, Sampling(every_nth=7))
    assert record["status"] == "success" and "warning" not in record
    assert [frame_index(f) for f in frames] == list(range(0, N, 7))
    np.testing.assert_allclose(record["timestamps"], np.arange(0, N, 7) / FPS, atol=1e-6)


def test_raw_streams_inside_input_tars_are_videos(tmp_path, checkpoint):
    """A webdataset tar whose samples hold raw streams (``KEY.h264``, ``KEY.m2v``): each is
    a video to encode, not a sample without one."""
    import io
    import tarfile

    from conftest import MODEL

    from clip_video_encode.cli import main as encode_main
    from clip_video_encode.read import iter_samples

    tar_path = tmp_path / "in.tar"
    with tarfile.open(tar_path, "w") as tar:
        for key, (name, codec, options) in zip(("a", "b"), (RAW[0], RAW[3]), strict=True):
            path = tmp_path / name
            write_raw(path, codec, options)
            tar.add(path, arcname=f"{key}.{name.rsplit('.', 1)[1]}")
            text = f"clip {key}".encode()
            info = tarfile.TarInfo(f"{key}.txt")
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))
    dest = tmp_path / "out"
    argv = [str(tar_path), "--dest", str(dest), "--model", MODEL, "--pretrained", checkpoint,
            "--num-frames", "4", "--quiet", "--workers", "1"]  # fmt: skip
    assert encode_main(argv) == 0
    samples = {key: (emb, meta) for key, emb, meta in iter_samples(str(dest))}
    assert sorted(samples) == ["a", "b"]
    for emb, meta in samples.values():
        assert emb.shape[0] == 4 and meta["timestamps"] == [0.0, 0.5, 1.0, 1.5]
        assert "no timestamps" in meta["warning"]


def test_video_members_are_found_whatever_the_case_of_their_extension(tmp_path, checkpoint,
                                                                      videos):  # fmt: skip
    """``KEY.MP4`` (cameras, Windows tools) is a video member as ``KEY.mp4`` is."""
    import tarfile

    from conftest import MODEL

    from clip_video_encode.cli import main as encode_main
    from clip_video_encode.read import iter_samples

    tar_path = tmp_path / "in.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(videos["cfr.mp4"], arcname="a.MP4")
        tar.add(videos["vp9.webm"], arcname="b.WebM")
    dest = tmp_path / "out"
    argv = [str(tar_path), "--dest", str(dest), "--model", MODEL, "--pretrained", checkpoint,
            "--num-frames", "2", "--quiet", "--workers", "1"]  # fmt: skip
    assert encode_main(argv) == 0
    samples = {key: meta for key, _, meta in iter_samples(str(dest))}
    assert sorted(samples) == ["a", "b"]
    assert all(meta["n_frames"] == 2 for meta in samples.values())
