"""clip-video-mix under a demanding user: datasets and tables on S3 (a real S3-compatible
server), a mix killed with SIGKILL and run again, hostile values in the tables."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import MODEL

from clip_video_encode.mix.cli import main as mix_main
from clip_video_encode.read import iter_samples
from clip_video_encode.video_models.synthetic import write_dataset

YT = [f"{i:03d}abcdefgh" for i in range(40)]  # 11 characters each


def clip(i: int) -> str:
    return f"{YT[i]}_000000_000010"


def synthetic(dest, clips, seed, samples_per_shard=4, copies=()):
    """A dataset of random frame embeddings whose ids are Kinetics clip names; ``copies``:
    ``(row, of_row_embeddings)`` pairs planted as near-copies (frames plus a little noise)."""
    rng = np.random.default_rng(seed)
    frames = [rng.standard_normal((4, 64)).astype(np.float16) for _ in clips]
    for row, original in copies:
        frames[row] = (original + 0.01 * rng.standard_normal(original.shape)).astype(np.float16)
    rows = ((f, {"id": clip(c), "caption": f"clip {c}", "split": "train"})
            for f, c in zip(frames, clips, strict=True))  # fmt: skip
    write_dataset(str(dest), rows, len(clips), 64, MODEL, "synthetic-weights", samples_per_shard)
    return frames


@pytest.mark.slow
def test_a_mix_killed_with_sigkill_resumes_to_the_same_bytes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    synthetic(a, list(range(40)) * 40, seed=0, samples_per_shard=100)  # 1600 rows
    synthetic(b, list(range(20, 40)) * 10, seed=1, samples_per_shard=100)
    argv = [str(a), str(b), "--samples-per-shard", "3", "--quiet"]
    clean = tmp_path / "clean"
    assert mix_main([*argv, "--dest", str(clean)]) == 0
    dest = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "clip_video_encode.mix.cli", *argv,
                                "--dest", str(dest)])  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and len(list(dest.glob("*_stats.json"))) < 20:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    committed = len(list(dest.glob("*_stats.json")))
    total = len(list(clean.glob("*_stats.json")))
    assert 20 <= committed < total  # killed in the middle
    assert mix_main([*argv, "--dest", str(dest)]) == 0
    names = sorted(p.name for p in clean.iterdir() if p.suffix in (".tar", ".parquet"))
    assert names == sorted(p.name for p in dest.iterdir() if p.suffix in (".tar", ".parquet"))
    for name in names:
        assert (dest / name).read_bytes() == (clean / name).read_bytes(), name
    assert not [p for p in dest.iterdir() if p.name.endswith(".partial")]


@pytest.fixture(scope="module")
def s3():
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    patch = pytest.MonkeyPatch()
    for name, value in {"AWS_ENDPOINT_URL": f"http://{host}:{port}",
                        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        patch.setenv(name, value)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(endpoint_url=f"http://{host}:{port}")
    fs.mkdir("mix-bucket")
    yield fs
    s3fs.S3FileSystem.clear_instance_cache()
    patch.undo()
    server.stop()


def test_datasets_tables_and_destination_on_s3(s3, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    frames = synthetic(a, list(range(10)), seed=0)
    # b: clips 0-3 of a (same source), 10-13 its own, and 14 a near-copy of a's clip 5
    synthetic(b, [0, 1, 2, 3, 10, 11, 12, 13, 14], seed=1, copies=[(8, frames[5])])
    (tmp_path / "eval.csv").write_text(
        "id,location,start,end\n" f"{clip(7)},https://youtu.be/{YT[7]},0,10\n")  # fmt: skip
    s3.put(str(a), "mix-bucket/in/a", recursive=True)
    s3.put(str(b), "mix-bucket/in/b", recursive=True)
    s3.put(str(tmp_path / "eval.csv"), "mix-bucket/in/eval.csv")
    dest = "s3://mix-bucket/out/mix"
    argv = ["s3://mix-bucket/in/a", "s3://mix-bucket/in/b/", "--exclude",
            "s3://mix-bucket/in/eval.csv", "--by", "source,content", "--eps", "0.01",
            "--dest", dest, "--quiet"]  # fmt: skip
    assert mix_main(argv) == 0
    got = [m for _, _, m in iter_samples(dest)]
    assert [m["id"] for m in got] == [clip(i) for i in (0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12,
                                                        13)]  # fmt: skip
    report = json.loads(s3.cat("mix-bucket/out/mix/mix_report.json"))
    assert [e["removed"] for e in report["inputs"]] == [
        {"excluded_source": 1, "excluded_content": 0, "same_source": 0, "near_duplicate": 0},
        {"excluded_source": 0, "excluded_content": 0, "same_source": 4, "near_duplicate": 1},
    ]  # fmt: skip
    assert got[-1]["source_dataset"] == "s3://mix-bucket/in/b/"
    assert mix_main(argv) == 0  # resumes: nothing left to write
    table = str(tmp_path / "table")
    assert mix_main(["s3://mix-bucket/in/a", "--dest", table, "--table-only", "--quiet",
                     "--exclude", "s3://mix-bucket/in/eval.csv"]) == 0  # fmt: skip
    assert pq.read_table(os.path.join(table, "mix.parquet")).num_rows == 9


def test_hostile_values_in_a_table(tmp_path, capsys):
    """Locations that are devices, folders, NUL-holding or empty text, 300-character names,
    unicode, case-only differences, and numbers where text belongs: each row gets an
    identity, none is read forever, nothing crashes."""
    rows = [
        ("a", "/dev/zero"), ("b", str(tmp_path)), ("c", "x\x00y.mp4"), ("d", ""),
        ("e", "é" * 300 + ".mp4"), ("f", "HTTPS://Example.COM/V.mp4"),
        ("g", "https://example.com/V.mp4"), ("h", "https://example.com/v.mp4"),
        ("i", "../../no/such/file.mp4"), ("j", "s3://no-such-bucket-here/v.mp4"),
    ]  # fmt: skip
    import pyarrow as pa

    table = tmp_path / "hostile.parquet"
    pq.write_table(pa.table({"id": [r[0] for r in rows], "location": [r[1] for r in rows],
                             "start": pa.array(["1", None, "x", None, None, None, None, None,
                                                None, None])}), table)  # fmt: skip
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"id": [1, 2], "location": ["https://example.com/V.mp4",
                                                        "/dev/zero"]}), other)  # fmt: skip
    dest = tmp_path / "out"
    assert mix_main([str(table), str(other), "--dest", str(dest), "--table-only", "--quiet"]) == 0
    report = json.loads((dest / "mix_report.json").read_text())
    # the other table's two rows: the same URL as f and g (host case only), and /dev/zero
    assert report["inputs"][1]["removed"]["same_source"] == 2
    out = pq.read_table(dest / "mix.parquet").to_pylist()
    assert len(out) == len(rows)
    sources = {r["id"]: r["source_id"] for r in out}
    assert sources["f"] == sources["g"] == "url:example.com/V.mp4" != sources["h"]
    assert sources["a"] == "path:/dev/zero" and sources["d"] is None
    assert sources["c"].startswith("path:") and sources["i"].startswith("path:/")


def test_a_destination_another_run_holds_is_refused(tmp_path, capsys):
    import fsspec

    from clip_video_encode.destination.lease import Lease

    synthetic(tmp_path / "a", list(range(6)), seed=0)
    dest = tmp_path / "out"
    dest.mkdir()
    with Lease(fsspec.filesystem("file"), str(dest)):
        assert mix_main([str(tmp_path / "a"), "--dest", str(dest), "--quiet"]) == 2
    assert "in use by another run" in capsys.readouterr().err
    assert sorted(p.name for p in dest.iterdir()) == []  # nothing written while it was held
    assert mix_main([str(tmp_path / "a"), "--dest", str(dest), "--quiet"]) == 0
