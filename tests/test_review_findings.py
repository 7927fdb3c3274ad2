"""Defects a review of issue 25's fixes reproduced (each test fails on the code it was written
against). Real components: generated videos, real tars (GNU tar where the defect is its
output), the random-weight checkpoint, the console entry points."""

import os
import shutil
import subprocess
import sys
import tarfile
import time

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
    at start-up (plan_run's remove_shard over the plan's partial names; check_free looks
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
    from clip_video_encode.plan.tars import tar_rows

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


def _unshare_argv() -> list[str] | None:
    """unshare(1) into a new PID namespace, as root or as a user namespace's root; None
    where neither works."""
    if shutil.which("unshare") is None:
        return None
    for argv in (
        ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"],
        ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--kill-child", "--mount-proc"],
    ):
        if subprocess.run([*argv, "true"], capture_output=True).returncode == 0:
            return argv
    return None


@pytest.mark.skipif(_unshare_argv() is None, reason="needs unshare(1) and PID namespaces")
def test_a_live_run_in_another_pid_namespace_keeps_its_scratch(tmp_path):
    """A container sharing /tmp and the host name (docker --network host -v /tmp:/tmp,
    apptainer --pid) has the same host hash and boot id but its own PIDs: its live owner's
    PID is no process here (or another one), so a sweep here removes its scratch folder
    while it runs, and the other way round. Reproduced end to end: a run in ``unshare
    --pid`` removed a live host run's tar scratch, which then failed a whole tar's rest.
    The owner's PID namespace (``/proc/self/ns/pid``) should be part of the name, and
    folders of another namespace left alone."""
    from video2numpy.scratch import sweep

    code = (
        "import time\n"
        "from video2numpy.scratch import make_scratch\n"
        f"print(make_scratch('clip-video-encode-', {str(tmp_path)!r}), flush=True)\n"
        "time.sleep(60)\n"
    )
    argv = [*_unshare_argv(), sys.executable, "-c", code]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        path = proc.stdout.readline().strip()
        assert os.path.isdir(path)
        time.sleep(0.2)
        sweep("clip-video-encode-", str(tmp_path))
        assert proc.poll() is None, "the owner is alive"
        assert os.path.isdir(path), "a live run's scratch folder was removed"
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_ray_decoders_the_cluster_cannot_place_are_not_handed_videos(videos, tmp_path, checkpoint):
    """--decoders N on a Ray instance of N CPUs (one is the encoder's): the last decode actor
    can never be placed, yet RayLane starts with every decoder idle (``deque(self.decoders)``;
    only a replacement waits until it has started), so it is handed a group of videos that
    waits --timeout and is recorded as ``timeout: no progress for 300 s`` (a whole video,
    exit 1, five minutes). Reproduced with --decoders 2 on a 2-core machine. The run should
    use the decoders that start (or refuse the count, naming the CPUs there are)."""
    pytest.importorskip("ray")
    src = tmp_path / "t.csv"
    src.write_text("location\n" + "".join(f"{videos['cfr.mp4']}\n" for _ in range(4)))
    dest = tmp_path / "out"
    script = os.path.join(os.path.dirname(sys.executable), "clip-video-encode")
    argv = [script, str(src), "--dest", str(dest), "--model", MODEL, "--pretrained", checkpoint]
    argv += ["--fps", "2", "--quiet", "--distributor", "ray", "--samples-per-shard", "1"]
    argv += ["--decoders", str(os.cpu_count() or 1), "--timeout", "40"]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    statuses = [
        s
        for p in sorted(dest.glob("*.parquet"))
        for s in pq.read_table(p).column("status").to_pylist()
    ]
    assert "timeout" not in statuses, (statuses, run.stderr[-500:])
    assert run.returncode in (0, 2), run.stderr[-500:]


def test_the_exit_code_speaks_for_the_whole_dataset_on_a_rerun(videos, tmp_path, checkpoint,
                                                               capsys):  # fmt: skip
    """Exit 0 means every row of the dataset succeeded: a rerun that finds every shard done
    exits 1 while a committed shard holds a failed row, as the run that wrote it did."""
    src = tmp_path / "videos.csv"
    src.write_text(f"location\n{videos['cfr.mp4']}\n{tmp_path / 'gone.mp4'}\n{videos['cfr.mp4']}\n")
    dest = tmp_path / "out"
    assert encode(src, dest, checkpoint, "--samples-per-shard", "2") == 1
    capsys.readouterr()
    assert encode(src, dest, checkpoint, "--samples-per-shard", "2") == 1
    err = capsys.readouterr().err
    assert "2 already done (1 of their rows failed)" in err, err
    assert encode(src, dest, checkpoint, "--samples-per-shard", "2", "--allow-failures") == 0
    # --retry-failed redoes the failed row; it fails again: still 1
    assert encode(src, dest, checkpoint, "--samples-per-shard", "2", "--retry-failed") == 1
    ok = tmp_path / "ok.csv"
    ok.write_text(f"location\n{videos['cfr.mp4']}\n")
    assert encode(ok, tmp_path / "ok", checkpoint) == 0
    assert encode(ok, tmp_path / "ok", checkpoint) == 0
