"""A run's integrity: scratch files of tar input, a changed input table, mixed frame sizes,
and memory that does not grow with the number of rows."""

import json
import os
import tracemalloc

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
import webdataset as wds
from conftest import MODEL

from clip_video_encode.cli import main
from clip_video_encode.read import iter_samples


def encode(src, dest, checkpoint, *extra):
    argv = [str(src), "--dest", str(dest), "--model", MODEL, "--pretrained", checkpoint]
    return main([*argv, "--fps", "2", "--quiet", "--batch-size", "16", *extra])


def test_tar_members_of_different_tars_never_share_a_scratch_file(videos, tmp_path, checkpoint):
    """Four single-sample tars decoded by two workers: each key keeps its own video's
    embeddings (the members all sit at position 0 of their tar, with the same extension)."""
    names = ["cfr.mp4", "ntsc.mp4", "vfr.mp4", "portrait.mp4"]
    src = tmp_path / "src"
    src.mkdir()
    for i, name in enumerate(names):
        with wds.TarWriter(str(src / f"{i:05d}.tar")) as sink, open(videos[name], "rb") as f:
            sink.write({"__key__": f"v{i}", "mp4": f.read(), "txt": name})
    # fp32: a tar's video is batched alone, the table's four together, and bf16 (auto on a
    # CPU with AMX) moves embeddings by a few of its ulps with the frames beside them.
    fp32 = ("--precision", "fp32")
    assert encode(src / "{00000..00003}.tar", tmp_path / "tars", checkpoint, "--workers", "2",
                  *fp32) == 0  # fmt: skip
    listing = tmp_path / "videos.csv"
    listing.write_text("location\n" + "\n".join(videos[n] for n in names) + "\n")
    assert encode(listing, tmp_path / "table", checkpoint, "--workers", "1", *fp32) == 0
    from_tars = {m["caption"]: e for _, e, m in iter_samples(str(tmp_path / "tars"))}
    from_table = [e for _, e, _ in iter_samples(str(tmp_path / "table"))]
    for name, expected in zip(names, from_table, strict=True):
        assert from_tars[name].shape == expected.shape, name
        np.testing.assert_allclose(from_tars[name], expected, atol=4e-3, err_msg=name)


def write_table(path, videos, names, captions):
    table = pa.table({"location": [videos[n] for n in names], "caption": captions})
    pacsv.write_csv(table, path)


def shard_files(dest):
    return {p: (dest / p).read_bytes() for p in sorted(os.listdir(dest)) if p.startswith("0000")}


def test_a_changed_table_is_refused_then_replanned(videos, tmp_path, checkpoint, capsys):
    names = ["cfr.mp4", "vfr.mp4", "one_frame.mp4", "portrait.mp4"]
    src, dest = tmp_path / "videos.csv", tmp_path / "out"
    args = ("--samples-per-shard", "2", "--workers", "1")
    write_table(src, videos, names, ["a", "b", "c", "d"])
    assert encode(src, dest, checkpoint, *args) == 0
    before = shard_files(dest)

    # Rows appended: a plain rerun would resume into the old plan and drop them.
    write_table(src, videos, [*names, "cfr.mp4"], ["a", "b", "c", "d", "e"])
    capsys.readouterr()
    assert encode(src, dest, checkpoint, *args) == 2
    err = capsys.readouterr().err
    assert "4 rows there, 5 now" in err and "--replan" in err
    assert shard_files(dest) == before  # nothing touched
    assert encode(src, dest, checkpoint, *args, "--replan") == 0
    after = shard_files(dest)
    for name in ("00000.tar", "00000_stats.json", "00001.tar", "00001_stats.json"):
        assert after[name] == before[name], f"{name} was rewritten"
    assert [m["caption"] for _, _, m in iter_samples(str(dest))] == ["a", "b", "c", "d", "e"]
    run = json.loads((dest / "run.json").read_text())
    assert run["rows"] == 5

    # Same row count, one caption changed: only its shard is redone.
    write_table(src, videos, [*names, "cfr.mp4"], ["a", "B", "c", "d", "e"])
    assert encode(src, dest, checkpoint, *args) == 2
    assert "different content" in capsys.readouterr().err
    assert encode(src, dest, checkpoint, *args, "--replan") == 0
    last = shard_files(dest)
    assert last["00000_stats.json"] != after["00000_stats.json"]  # redone
    assert last["00001.tar"] == after["00001.tar"] and last["00002.tar"] == after["00002.tar"]
    assert [m["caption"] for _, _, m in iter_samples(str(dest))] == ["a", "B", "c", "d", "e"]

    # Rows removed: shards past the new end go.
    write_table(src, videos, names[:2], ["a", "B"])
    assert encode(src, dest, checkpoint, *args, "--replan") == 0
    assert sorted(p for p in os.listdir(dest) if p.endswith(".tar")) == ["00000.tar"]
    assert [m["caption"] for _, _, m in iter_samples(str(dest))] == ["a", "B"]


@pytest.mark.parametrize("distributor", ["local"])
def test_native_size_frames_of_two_sizes(videos, tmp_path, checkpoint, distributor):
    """Videos of different sizes in one batch: each size is batched on its own (this hung)."""
    listing = tmp_path / "videos.txt"
    listing.write_text("\n".join([videos["cfr.mp4"], videos["portrait.mp4"], videos["vfr.mp4"]]))
    dest = tmp_path / "out"
    code = encode(listing, dest, checkpoint, "--resize-mode", "native", "--workers", "1",
                  "--batch-size", "64", "--distributor", distributor)  # fmt: skip
    assert code == 0
    got = list(iter_samples(str(dest)))
    assert [m["status"] for _, _, m in got] == ["success"] * 3
    assert [e.shape[0] for _, e, _ in got] == [6, 2, 7]


def test_an_error_in_the_encoder_thread_reaches_the_caller():
    from clip_video_encode.execute.local import EncoderThreadDied, _EncodeThread
    from clip_video_encode.plan.batching import Piece

    def explode(frames):
        raise SystemExit("the encoder thread is gone")  # not an Exception: escapes the batch

    def batch():
        return [[Piece(0, 0, np.zeros((2, 4, 4, 3), np.uint8), 0, 2)]]

    pipeline = _EncodeThread(explode)
    pipeline.put(batch())
    with pytest.raises(EncoderThreadDied, match="encoder thread is gone"):
        for _ in range(50):
            pipeline.put(batch())
            pipeline.wait()
            list(pipeline.results())
    pipeline.stop()


def test_planning_a_million_rows_costs_no_memory_per_row():
    from clip_video_encode.plan.shards import Columns, input_digest, plan_shards

    n = 1_000_000
    table = pa.table({"location": pa.array([f"/videos/{i:07d}.mp4" for i in range(n)]),
                      "caption": pa.array(["a caption"] * n)})  # fmt: skip
    tracemalloc.start()
    shards = plan_shards(table, Columns(), 1000)
    planned = tracemalloc.get_traced_memory()[0]
    input_digest(shards)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(shards) == 1000
    assert planned < 5e6, f"planning holds {planned / 1e6:.0f} MB of Python objects"
    assert peak < 20e6, f"hashing the input peaked at {peak / 1e6:.0f} MB"


def test_assembly_holds_only_videos_in_flight(tmp_path, encoder):
    """Rows handed out and finished one by one: memory stays at one shard's bookkeeping."""
    from clip_video_encode.commit.assembly import Assembly
    from clip_video_encode.commit.ledger import open_ledger
    from clip_video_encode.destination.folder import open_destination
    from clip_video_encode.plan.job import EncodeJob
    from clip_video_encode.plan.run_file import plan_run

    n = 6000
    src = tmp_path / "rows.csv"
    src.write_text("location,caption\n" + "".join(f"/no/{i}.mp4,caption {i}\n" for i in range(n)))
    job = EncodeJob(src=str(src), dest=str(tmp_path / "out"), samples_per_shard=500)
    fs, dest = open_destination(job.dest)
    plan = plan_run(job, encoder.describe(), fs, dest)
    ledger = open_ledger(job, plan, fs, dest)
    assembly = Assembly(job, plan, ledger, encoder.embed_dim, None)
    record = {"status": "failed_to_fetch", "error_message": "no such file", "timestamps": []}
    tracemalloc.start()
    largest = 0
    for video, _ in enumerate(assembly.sources()):
        largest = max(largest, len(assembly.slots))
        assembly.finish(video, record, None)
        if video == 1000:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assembly.close()
    assert largest == 1 and assembly.slots == {}
    assert ledger.summary.done_shards == 12
    assert peak - base < 3e6, f"memory grew by {(peak - base) / 1e6:.1f} MB over 5000 rows"
