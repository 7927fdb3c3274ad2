"""Input tars as they come: cut short, not tars at all, members of gigabytes, json fields of
changing types. None stops the run or costs memory by its size, and every reader shows the
same values."""

import hashlib
import io
import json
import os
import tarfile
import tracemalloc

import pyarrow.parquet as pq
import pytest
import webdataset as wds
from conftest import MODEL

from clip_video_encode.cli import main
from clip_video_encode.plan.tars import tar_rows


def encode(src, dest, checkpoint, *extra):
    argv = [str(src), "--dest", str(dest), "--model", MODEL, "--pretrained", checkpoint]
    return main([*argv, "--fps", "2", "--quiet", "--batch-size", "16", "--workers", "1", *extra])


def write_tar(path, videos, n=3, name="one_frame.mp4"):
    with open(videos[name], "rb") as f:
        data = f.read()
    with wds.TarWriter(str(path)) as sink:
        for i in range(n):
            sink.write({"__key__": f"s{i}", "mp4": data, "txt": f"clip {i}",
                        "json": {"rank": i}})  # fmt: skip
    return path


def member_offsets(path):
    """(name, offset of its data, size) of each member."""
    with tarfile.open(path) as tar:
        return [(m.name, m.offset_data, m.size) for m in tar]


def shard(dest, name):
    stats = json.loads((dest / f"{name}_stats.json").read_text())
    rows = pq.read_table(dest / f"{name}.parquet").to_pylist()
    return stats, rows


def test_a_tar_cut_mid_member_keeps_its_samples_and_the_others_are_encoded(
    videos, tmp_path, checkpoint, capsys
):
    src = tmp_path / "in"
    src.mkdir()
    write_tar(src / "00000.tar", videos)
    cut = write_tar(src / "00001.tar", videos)
    write_tar(src / "00002.tar", videos)
    _, start, size = next(m for m in member_offsets(cut) if m[0] == "s1.mp4")
    data = cut.read_bytes()
    cut.write_bytes(data[: start + size // 2])  # cut inside the second sample's video
    dest = tmp_path / "out"
    capsys.readouterr()
    assert encode(src / "{00000..00002}.tar", dest, checkpoint) == 1  # a row failed
    assert "Traceback" not in capsys.readouterr().err
    for name in ("00000", "00002"):
        stats, rows = shard(dest, name)
        assert [r["status"] for r in rows] == ["success"] * 3 and "error" not in stats
    stats, rows = shard(dest, "00001")
    assert [r["key"] for r in rows] == ["s0", "s1"]
    assert [r["status"] for r in rows] == ["success", "failed_to_fetch"]
    assert "damaged" in rows[1]["error_message"] and "00001.tar" in rows[1]["error_message"]
    assert stats["count"] == 2 and stats["failed"] == 1 and "damaged" in stats["error"]
    with tarfile.open(dest / "00001.tar") as tar:
        metas = [json.loads(tar.extractfile(m).read()) for m in tar if m.name.endswith(".json")]
    assert metas[1]["status"] == "failed_to_fetch" and metas[1]["error_message"]
    # The rerun does not die at the same tar: everything is committed (exit 1: the row the
    # damage cut into stays failed).
    assert encode(src / "{00000..00002}.tar", dest, checkpoint) == 1
    assert "3 already done (1 of their rows failed)" in capsys.readouterr().err


def test_a_tar_cut_at_a_member_boundary_says_so(videos, tmp_path, checkpoint):
    """Python's tar reader takes a tar cut between members for a whole one: the samples after
    the cut were lost without a word."""
    src = write_tar(tmp_path / "00000.tar", videos)
    name, start, size = member_offsets(src)[-1]  # s2's last member
    src.write_bytes(src.read_bytes()[: start - 512])  # cut just before its header
    dest = tmp_path / "out"
    assert encode(src, dest, checkpoint) == 1
    stats, rows = shard(dest, "00000")
    assert rows[-1]["status"] == "failed_to_fetch"
    assert "end-of-archive" in rows[-1]["error_message"] and "error" in stats


def test_a_file_that_is_no_tar_is_one_failed_row(videos, tmp_path, checkpoint):
    src = tmp_path / "in"
    src.mkdir()
    (src / "00000.tar").write_bytes(b"this is not a tar\n" * 100)
    write_tar(src / "00001.tar", videos, n=1)
    dest = tmp_path / "out"
    assert encode(src / "{00000..00001}.tar", dest, checkpoint) == 1
    stats, rows = shard(dest, "00000")
    assert [r["status"] for r in rows] == ["failed_to_fetch"] and stats["count"] == 1
    assert "00000.tar" in rows[0]["error_message"] and stats["error"]
    assert [r["status"] for r in shard(dest, "00001")[1]] == ["success"]


def big_tar(path, video: bytes, padding: int):
    """A tar whose first sample's video member carries ``padding`` zero bytes after the real
    video (written from a stream: the test holds none of it)."""

    class Zeros(io.RawIOBase):
        def __init__(self, head, n):
            self.head, self.left = head, n

        def readable(self):
            return True

        def readinto(self, b):
            if self.head:
                k = min(len(b), len(self.head))
                b[:k], self.head = self.head[:k], self.head[k:]
                return k
            k = min(len(b), self.left)
            b[:k] = bytes(k)
            self.left -= k
            return k

    with tarfile.open(path, "w") as tar:
        for key, body, size in [("big", video, len(video) + padding), ("small", video, 0)]:
            for ext, data in [("mp4", body), ("txt", f"caption {key}".encode())]:
                info = tarfile.TarInfo(f"{key}.{ext}")
                if ext == "mp4":
                    info.size = size or len(body)
                    tar.addfile(info, io.BufferedReader(Zeros(body, info.size - len(body))))
                else:
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
            info = tarfile.TarInfo(f"{key}.bin")  # a member no one reads
            info.size = padding
            tar.addfile(info, io.BufferedReader(Zeros(b"", padding)))


def test_tar_members_are_streamed_not_held(videos, tmp_path):
    with open(videos["cfr.mp4"], "rb") as f:
        video = f.read()
    padding = 128 << 20
    src = tmp_path / "big.tar"
    big_tar(src, video, padding)
    scratch = tmp_path / "scratch"
    tracemalloc.start()
    rows = []
    for row in tar_rows(str(src), str(scratch)):
        rows.append(row)
        if row["key"] == "big":
            with open(row["fetch"], "rb") as f:
                head = f.read(len(video))
            assert head == video and os.path.getsize(row["fetch"]) == len(video) + padding
            os.remove(row["fetch"])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert [r["key"] for r in rows] == ["big", "small"]
    assert [r["caption"] for r in rows] == ["caption big", "caption small"]
    small = open(rows[1]["fetch"], "rb").read()
    assert hashlib.sha1(small).digest() == hashlib.sha1(video).digest()
    assert peak < 16 << 20, f"reading the tar peaked at {peak / 2**20:.0f} MiB"


@pytest.mark.slow
def test_a_big_member_costs_no_memory_in_a_run(videos, tmp_path, checkpoint):
    """The whole run on a tar with a 256 MB video member (a real video, padded) and a 256 MB
    member no one reads: the process's peak RSS grows by far less than either."""
    import subprocess
    import sys

    with open(videos["cfr.mp4"], "rb") as f:
        video = f.read()
    src = tmp_path / "big.tar"
    big_tar(src, video, 256 << 20)
    code = (
        "import resource, sys\n"
        "from clip_video_encode.cli import main\n"
        f"code = main([{str(src)!r}, '--dest', {str(tmp_path / 'out')!r}, '--model', {MODEL!r},"
        f" '--pretrained', {checkpoint!r}, '--fps', '2', '--quiet', '--workers', '1'])\n"
        "print(code, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    baseline = (
        "import resource\n"
        "from clip_video_encode.cli import main\n"
        f"main([{videos['cfr.mp4']!r}, '--dest', {str(tmp_path / 'ref')!r}, '--model',"
        f" {MODEL!r}, '--pretrained', {checkpoint!r}, '--fps', '2', '--quiet', '--workers',"
        " '1'])\n"
        "print(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    runs = [subprocess.run([sys.executable, "-c", c], capture_output=True, text=True,
                           check=True).stdout.split() for c in (code, baseline)]  # fmt: skip
    assert runs[0][0] == "0"
    grown = (int(runs[0][1]) - int(runs[1][1])) * 1024
    assert grown < 64 << 20, f"peak RSS {grown / 2**20:.0f} MiB above a run without the tar"


def test_json_fields_read_the_same_in_every_reader(videos, tmp_path, checkpoint):
    """A field that is an object in one sample and text in another, a list, numbers of both
    kinds: the tar's json, the parquet and Hugging Face ``datasets`` show the same value."""
    datasets = pytest.importorskip("datasets")
    values = [{"a": 1}, "x", [1, "b"], None, {"nested": {"k": [1.5]}}]
    src = tmp_path / "00000.tar"
    with open(videos["one_frame.mp4"], "rb") as f:
        data = f.read()
    with wds.TarWriter(str(src)) as sink:
        for i, value in enumerate(values):
            meta = {"meta": value, "tags": ["t", str(i)], "n": [1, 2.5][i % 2]}
            sink.write({"__key__": f"s{i}", "mp4": data, "json": meta})
    dest = tmp_path / "out"
    assert encode(src, dest, checkpoint) == 0
    with tarfile.open(dest / "00000.tar") as tar:
        from_tar = [json.loads(tar.extractfile(m).read()) for m in tar if m.name.endswith("json")]
    parquet = pq.read_table(dest / "00000.parquet").to_pylist()
    hf = list(datasets.load_dataset(str(dest), split="train", cache_dir=str(tmp_path / "c")))
    for field in ("meta", "tags"):
        tar_values = [m[field] for m in from_tar]
        assert tar_values == [r[field] for r in parquet] == [r["json"][field] for r in hf], field
        for text, value in zip(tar_values, values if field == "meta" else [None] * 5, strict=True):
            if text is not None and not isinstance(value, str):
                json.loads(text)  # JSON, never a Python repr
    assert [r["json"]["n"] for r in hf] == [1.0, 2.5, 1.0, 2.5, 1.0]
    assert json.loads(from_tar[0]["meta"]) == {"a": 1} and from_tar[1]["meta"] == "x"
