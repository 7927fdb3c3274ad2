"""Faults at commit time: a marker that is not whole, data without a marker, a destination
that fills up; and a file cut short, which must say so."""

import json
import os
import subprocess

import av
import pytest
from conftest import MODEL

from clip_video_encode.cli import main
from clip_video_encode.read import iter_samples, shard_urls
from video2numpy import FrameOptions, Resize, Sampling, Task, sample_video
from video2numpy.synth import frame_image


def encode(src, dest, checkpoint, *extra):
    argv = [str(src), "--dest", str(dest), "--model", MODEL, "--pretrained", checkpoint]
    return main([*argv, "--fps", "2", "--quiet", "--batch-size", "16", "--workers", "1",
                 "--samples-per-shard", "2", *extra])  # fmt: skip


@pytest.fixture()
def listing(videos, tmp_path):
    path = tmp_path / "videos.txt"
    path.write_text("\n".join(videos[n] for n in ["cfr.mp4", "vfr.mp4", "one_frame.mp4"]))
    return path


def test_a_marker_that_is_not_whole_means_not_committed(listing, tmp_path, checkpoint):
    dest = tmp_path / "out"
    assert encode(listing, dest, checkpoint) == 0
    reference = (dest / "00000.tar").read_bytes()
    (dest / "00000_stats.json").write_bytes(b"")  # what a full disk left before markers
    assert [os.path.basename(u) for u in shard_urls(str(dest))] == ["00001.tar"]
    (dest / "00001_stats.json").write_text('{"shard": "00001", "cou')  # cut mid-write
    assert shard_urls(str(dest)) == []
    assert list(iter_samples(str(dest))) == []
    assert encode(listing, dest, checkpoint) == 0  # both redone
    assert (dest / "00000.tar").read_bytes() == reference
    assert json.loads((dest / "00000_stats.json").read_text())["count"] == 2
    assert len(list(iter_samples(str(dest)))) == 3


def test_data_replaced_after_its_commit_is_not_committed(listing, tmp_path, checkpoint):
    dest = tmp_path / "out"
    assert encode(listing, dest, checkpoint) == 0
    (dest / "00001.tar").write_bytes((dest / "00001.tar").read_bytes()[:1024])
    assert [os.path.basename(u) for u in shard_urls(str(dest))] == ["00000.tar"]
    assert encode(listing, dest, checkpoint) == 0
    assert len(list(iter_samples(str(dest)))) == 3


@pytest.fixture()
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
                          capture_output=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_is_one_line_and_the_rerun_resumes(
    listing, tmp_path, checkpoint, small_disk, capsys
):
    """The disk fills while the second shard is committed: the run stops with one line
    naming the destination, leaves no tar or parquet of that shard under a final name, and
    once space is freed the same command finishes the dataset."""
    reference = tmp_path / "reference"
    assert encode(listing, reference, checkpoint) == 0
    dest = small_disk / "out"
    first = sum(os.path.getsize(reference / f) for f in os.listdir(reference)
                if f.startswith("00000") or f == "run.json")  # fmt: skip
    # Room for run.json and the first shard, and for the second shard's tar but not more.
    page = 4096
    pages = sum(-(-os.path.getsize(reference / f) // page) for f in os.listdir(reference)
                if f.startswith("00000") or f == "run.json")  # fmt: skip
    pages += -(-os.path.getsize(reference / "00001.tar") // page)
    free = os.statvfs(small_disk).f_bavail * page
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (free - pages * page))
    capsys.readouterr()
    code = encode(listing, dest, checkpoint)
    err = capsys.readouterr().err
    assert code == 3, err
    assert "no space left" in err and str(dest) in err and "Traceback" not in err
    assert first > 0 and (dest / "00000_stats.json").exists()
    assert not (dest / "00001_stats.json").exists()
    assert not (dest / "00001.tar").exists() and not (dest / "00001.parquet").exists()
    assert [os.path.basename(u) for u in shard_urls(str(dest))] == ["00000.tar"]
    filler.unlink()
    assert encode(listing, dest, checkpoint) == 0
    assert (dest / "00001.tar").read_bytes() == (reference / "00001.tar").read_bytes()
    assert len(list(iter_samples(str(dest)))) == 3


@pytest.fixture(scope="module")
def cut_fragmented(tmp_path_factory):
    """A 10 s fragmented MP4 (as live recorders and DASH write) cut at 60% of its bytes."""
    root = tmp_path_factory.mktemp("frag")
    whole, cut = root / "whole.mp4", root / "cut.mp4"
    with av.open(str(whole), "w", options={"movflags": "frag_keyframe+empty_moov"}) as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        stream.options = {"g": "30"}
        for i in range(300):
            frame = av.VideoFrame.from_ndarray(frame_image(i, 160, 96), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    data = whole.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    return str(whole), str(cut)


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_a_cut_file_keeps_its_frames_and_says_so(cut_fragmented, tmp_path, backend):
    whole, cut = cut_fragmented
    options = FrameOptions(Sampling(fps=1), Resize(32), backend=backend)
    full = list(sample_video(Task(0, whole), options, str(tmp_path)))[-1].record
    part = list(sample_video(Task(0, cut), options, str(tmp_path)))[-1].record
    assert full["status"] == "success" and "warning" not in full
    assert full["timestamps"] == [float(s) for s in range(10)]
    assert part["status"] == "success"
    assert part["timestamps"] == [float(s) for s in range(6)]  # the frames before the cut
    assert "truncated" in part["warning"] and "fetch the file again" in part["warning"]


def test_the_warning_reaches_the_shard(cut_fragmented, tmp_path, checkpoint):
    import pyarrow.parquet as pq

    listing = tmp_path / "videos.txt"
    listing.write_text("\n".join(cut_fragmented))
    dest = tmp_path / "out"
    assert encode(listing, dest, checkpoint) == 0
    stats = json.loads((dest / "00000_stats.json").read_text())
    assert stats["warnings"] == 1
    rows = pq.read_table(dest / "00000.parquet").to_pylist()
    assert rows[0]["warning"] is None and "truncated" in rows[1]["warning"]
