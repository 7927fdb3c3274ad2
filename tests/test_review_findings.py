"""Defects a review of issue 25's fixes reproduced (each test fails on the code it was written
against). Real components: generated videos, real tars (GNU tar where the defect is its
output), the random-weight checkpoint, the console entry points."""

import os
import shutil
import subprocess
import tarfile

import pyarrow.parquet as pq
import pytest
import webdataset as wds
from conftest import MODEL

from clip_video_encode.cli import main


def encode(src, dest, checkpoint, *extra):
    argv = [str(src), "--dest", str(dest), "--model", MODEL, "--pretrained", checkpoint]
    return main([*argv, "--fps", "2", "--quiet", "--batch-size", "16", "--workers", "1", *extra])


def test_a_fresh_run_leaves_a_users_file_at_a_partial_name_alone(videos, tmp_path, checkpoint):
    """DESIGN.md section 7: a run removes only what it can prove it wrote. In a destination
    with no run.json no run of this tool ever started (run.json is written before any
    partial file), so ``00000.parquet.partial`` there is not the tool's: today it is deleted
    at start-up (prepare_run's remove_shard over the plan's partial names; check_free looks
    at final names only). It should be refused like a final name, or left alone."""
    src = tmp_path / "t.csv"
    src.write_text(f"location\n{videos['one_frame.mp4']}\n")
    dest = tmp_path / "out"
    dest.mkdir()
    mine = dest / "00000.parquet.partial"
    mine.write_bytes(b"a user's file, not this tool's")
    encode(src, dest, checkpoint)
    assert mine.exists() and mine.read_bytes() == b"a user's file, not this tool's"


def test_an_input_video_reached_through_a_link_to_dest_is_not_deleted(videos, tmp_path, checkpoint):
    """The input guard filters locations by the text of --dest's name (dataset._near): a
    table naming its videos through another path to the same folder (a symbolic link
    ``alias -> out``) passes it, and a video lying at one of the run's partial names is
    deleted at start-up; the row then fails to decode a file that was there."""
    dest = tmp_path / "out"
    dest.mkdir()
    video = dest / "00000.tar.partial"
    shutil.copy(videos["one_frame.mp4"], video)
    before = video.read_bytes()
    (tmp_path / "alias").symlink_to("out")
    src = tmp_path / "t.csv"
    src.write_text(f"location\n{tmp_path / 'alias' / '00000.tar.partial'}\n")
    encode(src, dest, checkpoint)
    assert video.exists() and video.read_bytes() == before


def test_a_hard_linked_video_member_is_not_lost_without_a_word(videos, tmp_path, checkpoint):
    """GNU tar stores a second name of a hard-linked file as a link member (type '1', no
    data). read_tar skips every member that is not a regular file, so that sample has no
    row at all: 2 rows of 3 samples, exit 0, nothing said. Every input sample should appear
    once with a status (read from the linked member, or failed with a reason)."""
    folder = tmp_path / "src"
    folder.mkdir()
    shutil.copy(videos["one_frame.mp4"], folder / "a.mp4")
    os.link(folder / "a.mp4", folder / "b.mp4")
    shutil.copy(videos["one_frame.mp4"], folder / "c.mp4")
    src = tmp_path / "in.tar"
    subprocess.run(["tar", "-cf", str(src), "a.mp4", "b.mp4", "c.mp4"], cwd=folder, check=True)
    with tarfile.open(src) as tar:
        assert [m.islnk() for m in tar.getmembers()] == [False, True, False]
    dest = tmp_path / "out"
    code = encode(src, dest, checkpoint)
    keys = pq.read_table(dest / "in.parquet").column("key").to_pylist()
    assert sorted(keys) == ["a", "b", "c"], (keys, code)


def test_a_scratch_file_that_cannot_be_made_is_not_tar_damage(videos, tmp_path):
    """tars._stream opens the scratch file outside its guard: an error of this machine while
    creating it (the scratch folder removed under the run, no inodes or descriptors left)
    is reported as "IN.tar is damaged or unreadable", the shard is committed with the
    samples before it and the rest of a whole tar is never encoded (a rerun says done).
    A write error there already stops the run (_ScratchFailed); creating the file should
    too. Reproduced end to end when another run removed the live scratch folder: a 48
    sample tar committed as 13 rows."""
    from clip_video_encode.tars import tar_rows

    src = tmp_path / "00000.tar"
    with open(videos["one_frame.mp4"], "rb") as f:
        data = f.read()
    with wds.TarWriter(str(src)) as sink:
        for key in ("s0", "s1", "s2"):
            sink.write({"__key__": key, "mp4": data})
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "1.mp4").mkdir()  # sample 1's scratch file cannot be created (EISDIR)
    with pytest.raises(OSError):
        rows = list(tar_rows(str(src), str(scratch)))
        # today: 2 rows, the second "damaged or unreadable", and s2 never read
        assert all("tar_error" not in r for r in rows), rows
