"""--retry-failed: only the failed rows are done again; every other row stays byte for byte."""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import MODEL

from clip_video_encode.cli import main as encode_main
from clip_video_encode.destination.folder import committed_shards


def args(src, dest, checkpoint, *extra):
    return [str(src), "--dest", str(dest), "--model", MODEL, "--pretrained", checkpoint,
            "--fps", "2", "--samples-per-shard", "2", "--batch-size", "8", "--workers", "1",
            "--precision", "fp32", "--quiet", *extra]  # fmt: skip


def members(path):
    """A shard's samples: ``{member name: bytes}`` (a tar, or a folder of files)."""
    if os.path.isdir(path):
        return {n: open(os.path.join(path, n), "rb").read() for n in sorted(os.listdir(path))}
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}


def snapshot(dest):
    return {name: (members(dest / name) if name.endswith(".tar") or (dest / name).is_dir()
                   else (dest / name).read_bytes())
            for name in sorted(os.listdir(dest)) if name != "run.json"}  # fmt: skip


def check_consistent(dest):
    """Every shard committed, and its stats agree with its parquet and its samples."""
    import fsspec

    stats, _ = committed_shards(fsspec.filesystem("file"), str(dest))
    for s in stats:
        rows = pq.read_table(dest / f"{s['shard']}.parquet").to_pylist()
        statuses = {}
        for r in rows:
            statuses[r["status"]] = statuses.get(r["status"], 0) + 1
        assert s["status_dict"] == statuses and s["count"] == len(rows)
        assert s["frames"] == sum(r["n_frames"] for r in rows)
        data = members(s["_data"])
        jsons = [json.loads(v) for k, v in data.items() if k.endswith(".json")]
        assert [j["status"] for j in jsons] == [r["status"] for r in rows]
    return stats


@pytest.fixture()
def table(videos, tmp_path):
    """Five rows in three shards: a file that is missing for now, one that is not a video."""
    later = tmp_path / "arrives-later.mp4"
    broken = tmp_path / "broken.mp4"
    shutil.copy(videos["text.mp4"], broken)
    rows = [videos["cfr.mp4"], str(later), videos["vfr.mp4"], str(broken), videos["one_frame.mp4"]]
    src = tmp_path / "videos.csv"
    src.write_text("location,caption\n" + "".join(f"{r},row {i}\n" for i, r in enumerate(rows)))
    return src, later, broken


@pytest.mark.parametrize("output_format", ["webdataset", "files"])
def test_retry_redoes_only_the_failed_rows(videos, tmp_path, checkpoint, table, output_format):
    src, later, broken = table
    dest = tmp_path / "out"
    fmt = ["--output-format", output_format]
    assert encode_main(args(src, dest, checkpoint, *fmt)) == 1
    first = snapshot(dest)
    shutil.copy(videos["ntsc.mp4"], later)  # the missing video is there now
    shutil.copy(videos["portrait.mp4"], broken)  # this one too, but its status is not retried
    # exit 1: the broken video's row (failed_to_decode, not retried) still failed
    assert encode_main(args(src, dest, checkpoint, *fmt, "--retry-failed")) == 1
    second = snapshot(dest)
    name0 = "00000.tar" if output_format == "webdataset" else "00000"
    # Only shard 0 held a retryable row: shards 1 and 2 are untouched, marker included. The
    # card changes: it carries a stamp of the content (Hugging Face's cache is keyed by it).
    untouched = lambda snap: {k: v for k, v in snap.items()  # noqa: E731
                              if not k.startswith("00000") and k != "README.md"}  # fmt: skip
    assert untouched(second) == untouched(first)
    if output_format == "webdataset":
        assert second["README.md"] != first["README.md"]
    kept = [m for m in first[name0] if m.startswith("000000.")]
    assert kept and all(second[name0][m] == first[name0][m] for m in kept)  # byte for byte
    stats = check_consistent(dest)
    assert stats[0]["status_dict"] == {"success": 2}
    assert stats[1]["status_dict"] == {"failed_to_decode": 1, "success": 1}
    # The rewritten shard is the one a fresh run writes now: byte for byte, but for the
    # redone row's embeddings, batched with the other rows redone (none here) rather than
    # beside row 0's frames, which move them by float16 rounding (fp32 here; bf16's rounding
    # moves them by a few of its own ulps), see clip_video_encode.plan.batching.
    fresh = tmp_path / "fresh"
    encode_main(args(src, fresh, checkpoint, *fmt))
    assert_same_but_batching(members(dest / name0), members(fresh / name0))
    assert pq.read_table(dest / "00000.parquet") == pq.read_table(fresh / "00000.parquet")
    # --retry-status adds a status; nothing left with a retryable status is a no-op.
    # exit 1: the broken video's row (failed_to_decode, not retried) still failed
    assert encode_main(args(src, dest, checkpoint, *fmt, "--retry-failed")) == 1
    assert snapshot(dest) == second
    assert encode_main(args(src, dest, checkpoint, *fmt, "--retry-status",
                            "failed_to_decode")) == 0  # fmt: skip
    stats = check_consistent(dest)
    assert [s["status_dict"] for s in stats] == [{"success": 2}] * 2 + [{"success": 1}]
    assert_same_but_batching(members(dest / name0), members(fresh / name0))


def assert_same_but_batching(ours: dict, fresh: dict) -> None:
    """The same members, byte for byte; embeddings that differ do so by rounding."""
    assert list(ours) == list(fresh)
    for name, data in ours.items():
        if data == fresh[name]:
            continue
        assert name.endswith(".npy"), name
        a, b = (np.load(io.BytesIO(x)).astype(np.float32) for x in (data, fresh[name]))
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-3, err_msg=name)


def test_retry_status_success_is_refused(tmp_path, checkpoint, table, capsys):
    with pytest.raises(SystemExit) as exc:
        encode_main(args(table[0], tmp_path / "out", checkpoint, "--retry-status", "success"))
    assert exc.value.code == 2 and "never redone" in capsys.readouterr().err


@pytest.mark.slow
def test_retry_killed_then_run_again_is_consistent(videos, tmp_path, checkpoint):
    """SIGKILL while a retry rewrites a shard, and in the window after it un-committed the
    old shard: the next run leaves a consistent dataset, equal to a fresh run's."""
    later = [tmp_path / f"later{i}.mp4" for i in range(3)]
    rows = [videos["cfr.mp4"], str(later[0]), str(later[1]), str(later[2]), videos["vfr.mp4"]]
    src = tmp_path / "videos.csv"
    src.write_text("location\n" + "\n".join(rows) + "\n")
    argv = args(src, "{dest}", checkpoint, "--samples-per-shard", "5")
    dest = tmp_path / "out"
    run = [sys.executable, "-m", "clip_video_encode.cli", *[a.format(dest=dest) for a in argv]]
    assert encode_main([a.format(dest=dest) for a in argv]) == 1
    for path in later:
        shutil.copy(videos["ntsc.mp4"], path)
    proc = subprocess.Popen([*run, "--retry-failed"], start_new_session=True)
    deadline = time.monotonic() + 120
    while not (dest / "00000.tar.partial").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    stats = check_consistent(dest)  # the committed shard still stands, as it was
    assert stats[0]["status_dict"] == {"failed_to_fetch": 3, "success": 2}
    (dest / "00000_stats.json").unlink()  # as if killed right after un-committing it
    assert encode_main([*[a.format(dest=dest) for a in argv], "--retry-failed"]) == 0
    fresh = tmp_path / "fresh"
    encode_main([a.format(dest=fresh) for a in argv])
    stats = check_consistent(dest)
    assert stats[0]["status_dict"] == {"success": 5}
    assert members(dest / "00000.tar") == members(fresh / "00000.tar")
    assert not [p for p in os.listdir(dest) if "partial" in p]
