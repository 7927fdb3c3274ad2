"""One run per destination: the lease file, its heartbeat and its takeover rules."""

import json
import os
import socket
import subprocess
import sys
import threading
import time

import fsspec
import pytest
from conftest import MODEL

from clip_video_encode.cli import main as encode_main
from clip_video_encode.destination.lease import LEASE_NAME, DestinationBusy, Lease, LeaseLost
from clip_video_encode.read import iter_samples


def argv_for(listing, dest, checkpoint):
    return [str(listing), "--dest", str(dest), "--model", MODEL, "--pretrained", checkpoint,
            "--fps", "2", "--samples-per-shard", "2", "--batch-size", "8", "--workers", "1",
            "--quiet"]  # fmt: skip


def test_a_second_run_on_a_busy_destination_refuses(videos, tmp_path, checkpoint, capsys):
    names = ["long.mp4", "ntsc.mp4", "cfr.mp4", "vfr.mp4", "one_frame.mp4", "portrait.mp4"]
    listing = tmp_path / "videos.txt"
    listing.write_text("\n".join(videos[n] for n in names))
    dest = tmp_path / "out"
    argv = argv_for(listing, dest, checkpoint)
    first = subprocess.Popen([sys.executable, "-m", "clip_video_encode.cli", *argv],
                             stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (dest / LEASE_NAME).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    held = json.loads((dest / LEASE_NAME).read_text())
    assert held["pid"] == first.pid and held["host"] == socket.gethostname()
    assert encode_main(argv) == 2
    err = capsys.readouterr().err
    assert "in use by another run" in err and f"process {first.pid}" in err, err
    assert json.loads((dest / LEASE_NAME).read_text())["run_id"] == held["run_id"]
    assert first.wait(timeout=300) == 0, first.stderr.read().decode()
    # The first run was not disturbed: every row written, the lease given back.
    assert not (dest / LEASE_NAME).exists()
    assert len(list(iter_samples(str(dest)))) == 6
    assert encode_main(argv) == 0  # free again: resumes (nothing left to do)


def write_lease(dest, **fields):
    os.makedirs(dest, exist_ok=True)
    lease = {"run_id": "someone", "host": "another-host", "pid": 1, "started": 0,
             "heartbeat": time.time(), "lease_seconds": 120, **fields}  # fmt: skip
    (dest / LEASE_NAME).write_text(json.dumps(lease))


def test_takeover_rules(tmp_path):
    fs = fsspec.filesystem("file")
    dest = tmp_path / "d"
    write_lease(dest)  # live, on another host
    with pytest.raises(DestinationBusy, match="another-host"):
        Lease(fs, str(dest)).acquire()
    write_lease(dest, heartbeat=time.time() - 121)  # stale: its run stopped beating
    with Lease(fs, str(dest)) as lease:
        assert json.loads((dest / LEASE_NAME).read_text())["run_id"] == lease.run_id
    assert not (dest / LEASE_NAME).exists()  # given back
    gone = subprocess.Popen(["true"])
    gone.wait()
    write_lease(dest, host=socket.gethostname(), pid=gone.pid)  # fresh, but its process is gone
    with Lease(fs, str(dest)):
        pass
    write_lease(dest, host=socket.gethostname(), pid=os.getppid())  # fresh and alive here
    with pytest.raises(DestinationBusy):
        Lease(fs, str(dest)).acquire()
    (dest / LEASE_NAME).write_text('{"run_id": "torn')  # a torn write counts as stale
    with Lease(fs, str(dest)):
        pass


def race(leases):
    """Acquire every lease at once, each in its thread: "won" or "refused" for each."""
    results = [None] * len(leases)
    barrier = threading.Barrier(len(leases))

    def take(i):
        barrier.wait()
        try:
            leases[i].acquire()
            results[i] = "won"
        except DestinationBusy:
            results[i] = "refused"

    threads = [threading.Thread(target=take, args=(i,)) for i in range(len(leases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_two_runs_racing_for_a_lease_one_wins(tmp_path):
    fs = fsspec.filesystem("file")
    for stale in (False, True):  # a new lease (a hard link), then a takeover (write, settle, read)
        dest = tmp_path / f"race-{stale}"
        if stale:
            write_lease(dest, heartbeat=0)
        else:
            os.makedirs(dest)
        leases = [Lease(fs, str(dest)) for _ in range(4)]
        results = race(leases)
        assert sorted(results) == ["refused"] * 3 + ["won"], results
        winner = leases[results.index("won")]
        assert json.loads((dest / LEASE_NAME).read_text())["run_id"] == winner.run_id


def test_a_run_that_lost_its_lease_stops_before_committing(
    videos, tmp_path, checkpoint, monkeypatch
):
    """A run stalled past its lease's lifetime finds it taken before its next commit and commits
    nothing more; what it committed before stays valid."""
    from clip_video_encode.execute.local import encode_dataset
    from clip_video_encode.models.encoder import EncoderOptions
    from clip_video_encode.plan.job import EncodeJob
    from video2numpy.video import FrameOptions, Sampling

    listing = tmp_path / "videos.txt"
    listing.write_text("\n".join(videos[n] for n in ["cfr.mp4", "vfr.mp4", "long.mp4"]))
    dest = tmp_path / "out"
    job = EncodeJob(str(listing), str(dest), FrameOptions(Sampling(fps=2)),
                    EncoderOptions(MODEL, pretrained=checkpoint, precision="fp32"),
                    samples_per_shard=1, workers=1, lease_seconds=0.4)  # fmt: skip

    # The run stalls before its second commit (its heartbeat stops) and another run takes
    # the lease meanwhile.
    checks = []
    real_check = Lease.check

    def stall_then_check(lease):
        checks.append(lease)
        if len(checks) == 2:
            lease._stop.set()
            lease._thread.join()
            write_lease(dest, heartbeat=time.time() + 3600)
        real_check(lease)

    monkeypatch.setattr(Lease, "check", stall_then_check)
    with pytest.raises(LeaseLost, match="another run took the lease"):
        encode_dataset(job, progress=False)
    assert (dest / "00000_stats.json").exists() and not (dest / "00001_stats.json").exists()
    assert json.loads((dest / LEASE_NAME).read_text())["run_id"] == "someone"  # not removed
