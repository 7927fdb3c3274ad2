"""Scratch folders of a run killed without warning are removed by a later run, and only those
whose owner is provably gone."""

import os
import signal
import subprocess
import sys
import time

import webdataset as wds
from conftest import MODEL

PREFIXES = ("clip-video-encode-", "video2numpy-worker-")


def scratch_in(folder, prefix):
    """A process that makes a scratch folder in ``folder`` and waits: (process, folder)."""
    code = (
        "import sys, time\n"
        "from video2numpy.scratch import make_scratch\n"
        f"print(make_scratch({prefix!r}, {str(folder)!r}), flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def test_only_folders_of_dead_owners_are_swept(tmp_path):
    from video2numpy.scratch import owner_tag, start_time, sweep

    live, live_path = scratch_in(tmp_path, "clip-video-encode-")
    dead, dead_path = scratch_in(tmp_path, "clip-video-encode-")  # its sweep keeps live's
    dead.kill()
    dead.wait()
    try:
        old_style = tmp_path / "clip-video-encode-abc123xy"  # before this scheme: whose?
        other_host = tmp_path / f"clip-video-encode-h000000-{owner_tag(1)[8:]}x"
        reused = tmp_path / (  # the live pid, another start time: the pid was reused
            f"clip-video-encode-{owner_tag(live.pid).rsplit('-t', 1)[0]}"
            f"-t{start_time(live.pid) + 1}-x"
        )
        other_prefix = tmp_path / f"something-{owner_tag(dead.pid)}x"
        for path in (old_style, other_host, reused, other_prefix):
            path.mkdir()
        assert os.path.isdir(dead_path) and os.path.isdir(live_path)
        removed = sweep("clip-video-encode-", str(tmp_path))
        assert sorted(removed) == sorted([dead_path, str(reused)])
        assert not os.path.exists(dead_path) and not reused.exists()
        assert os.path.isdir(live_path) and old_style.is_dir() and other_host.is_dir()
        assert other_prefix.is_dir()
    finally:
        live.kill()
        live.wait()


def test_a_killed_runs_scratch_is_removed_by_the_next_run(videos, tmp_path, checkpoint):
    """``kill -9`` of a run on tar input while it decodes: its folder of tar members and its
    decode workers' folders stay; the next run removes them."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    src = tmp_path / "00000.tar"
    with open(videos["long.mp4"], "rb") as f:
        data = f.read()
    with wds.TarWriter(str(src)) as sink:
        for i in range(6):
            sink.write({"__key__": f"v{i}", "mp4": data})
    args = [sys.executable, "-m", "clip_video_encode.cli", str(src), "--model", MODEL,
            "--pretrained", checkpoint, "--fps", "10", "--quiet", "--workers", "2"]  # fmt: skip
    env = {**os.environ, "TMPDIR": str(tmp)}

    def ours():
        return sorted(n for n in os.listdir(tmp) if n.startswith(PREFIXES))

    proc = subprocess.Popen([*args, "--dest", str(tmp_path / "killed")], env=env,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (
        any(n.startswith("video2numpy-worker-") for n in ours())
        and any(n.startswith("clip-video-encode-") for n in ours())
    ):
        time.sleep(0.05)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its decode workers
    proc.wait()
    assert {p for p in PREFIXES for n in ours() if n.startswith(p)} == set(PREFIXES)
    small = tmp_path / "small.tar"  # the next run: any input, here a quick one
    with wds.TarWriter(str(small)) as sink, open(videos["one_frame.mp4"], "rb") as f:
        sink.write({"__key__": "v", "mp4": f.read()})
    args[3] = str(small)
    done = subprocess.run([*args, "--dest", str(tmp_path / "next")], env=env, timeout=300)
    assert done.returncode == 0
    assert ours() == []  # the killed run's folders swept, the finished run's own removed
