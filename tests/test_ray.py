"""The Ray executor on a real local multi-node cluster: same shards as the local executor, and
every row exactly once when a decode actor's process or a whole worker node is killed."""

import io
import json
import os
import shutil
import tarfile
import threading
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

from conftest import MODEL  # noqa: E402

from clip_video_encode.cli import main  # noqa: E402
from clip_video_encode.execute.ray_executor import RayOptions, encode_dataset_ray  # noqa: E402
from clip_video_encode.models.encoder import EncoderOptions  # noqa: E402
from clip_video_encode.plan.job import EncodeJob  # noqa: E402
from video2numpy import FrameOptions, Sampling, read_videos  # noqa: E402
from video2numpy.synth import write_video  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    """A head and two worker nodes of one CPU each, shared by this module's tests."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    yield cluster, workers
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray_videos")
    paths = []
    for i in range(10):
        path = str(root / f"clip{i}.mp4")
        write_video(path, n_frames=90 + 15 * i, fps=30, width=160, height=120)
        paths.append(path)
    return paths


def table_of(tmp_path, paths, extra_rows=()):
    lines = ["location,caption,start,end,split"]
    lines += [f"{p},clip number {i},,,train" for i, p in enumerate(paths)]
    lines += list(extra_rows)
    table = tmp_path / "videos.csv"
    table.write_text("\n".join(lines) + "\n")
    return str(table)


def read_shards(dest):
    """Everything a reader sees: per key, the json and the embeddings; per shard, parquet."""
    samples, parquet = {}, {}
    for name in sorted(os.listdir(dest)):
        if name.endswith(".tar"):
            with tarfile.open(os.path.join(dest, name)) as tar:
                for member in tar:
                    key, ext = member.name.split(".", 1)
                    data = tar.extractfile(member).read()
                    entry = samples.setdefault(key, {"order": len(samples)})
                    entry[ext] = np.load(io.BytesIO(data)) if ext == "npy" else data
        elif name.endswith(".parquet"):
            parquet[name] = pq.read_table(os.path.join(dest, name)).to_pylist()
    return samples, parquet


def assert_same_shards(dest, local_dest):
    """``dest`` holds what the local executor wrote to ``local_dest``: the same files, parquet
    rows, keys in order, json, captions and embeddings, bit for bit (both executors batch
    frames by the same rule, clip_video_encode.plan.batching). Returns
    ``read_shards(dest)`` and ``read_shards(local_dest)``."""
    assert sorted(os.listdir(dest)) == sorted(os.listdir(local_dest))
    (samples, parquet), (local_samples, local_parquet) = read_shards(dest), read_shards(local_dest)
    assert parquet == local_parquet
    assert list(samples) == list(local_samples)  # keys, in the same order
    for key, theirs in local_samples.items():
        ours = samples[key]
        assert ours["json"] == theirs["json"] and ours.get("txt") == theirs.get("txt")
        assert ours["npy"].dtype == theirs["npy"].dtype
        np.testing.assert_array_equal(ours["npy"], theirs["npy"])
    return (samples, parquet), (local_samples, local_parquet)


def job_for(table, dest, checkpoint, samples_per_shard=4, **kwargs):
    return EncodeJob(
        table,
        str(dest),
        FrameOptions(Sampling(fps=4)),
        EncoderOptions(MODEL, pretrained=checkpoint, precision="fp32", batch_size=8),
        samples_per_shard=samples_per_shard,
        **kwargs,
    )


def test_same_shards_as_the_local_executor(cluster, clips, checkpoint, tmp_path):
    bad = f"{tmp_path}/arrives-later.mp4,missing,,,train"
    window = f"{clips[3]},a window,1.0,2.0,val"
    table = table_of(tmp_path, clips[:6], [bad, window])
    ray_dest, local_dest = tmp_path / "ray", tmp_path / "local"
    common = ["--model", MODEL, "--pretrained", checkpoint, "--fps", "4", "--batch-size", "8",
              "--samples-per-shard", "4", "--quiet", "--precision", "fp32"]  # fmt: skip
    assert main([table, "--dest", str(ray_dest), "--distributor", "ray", *common]) == 1
    assert main([table, "--dest", str(local_dest), "--workers", "1", *common]) == 1
    (ray_samples, _), _ = assert_same_shards(ray_dest, local_dest)
    assert len(ray_samples) == 8
    meta = json.loads(ray_samples["000012"]["json"])
    assert meta["status"] == "failed_to_fetch" and meta["split"] == "train"
    # Several videos per decode call (the failed row and the window among them): the same.
    grouped_dest = tmp_path / "grouped"
    options = RayOptions(encoder_cpus=0, group_videos=4)
    encode_dataset_ray(job_for(table, grouped_dest, checkpoint), options, progress=False)
    assert_same_shards(grouped_dest, local_dest)
    assert (ray_dest / "splits.csv").read_text() == (local_dest / "splits.csv").read_text()
    # --retry-failed on Ray: the video is there now; the shard's other rows stay byte for byte.
    shutil.copy(clips[6], tmp_path / "arrives-later.mp4")
    with tarfile.open(ray_dest / "00001.tar") as tar:
        before = {m.name: tar.extractfile(m).read() for m in tar if m.name.startswith("000013")}
    assert main([table, "--dest", str(ray_dest), "--distributor", "ray", *common,
                 "--retry-failed"]) == 0  # fmt: skip
    assert main([table, "--dest", str(local_dest), "--workers", "1", *common,
                 "--retry-failed"]) == 0  # fmt: skip
    ray_samples, ray_parquet = read_shards(ray_dest)
    assert ray_parquet == read_shards(local_dest)[1]
    assert json.loads(ray_samples["000012"]["json"])["status"] == "success"
    with tarfile.open(ray_dest / "00001.tar") as tar:
        assert before and before == {
            m.name: tar.extractfile(m).read() for m in tar if m.name in before
        }


def run_in_thread(job, options):
    result = {}

    def target():
        try:
            result["summary"] = encode_dataset_ray(job, options, progress=False)
        except BaseException as exc:  # surfaced by the test
            result["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread, result


def wait_for_decoding(timeout=60.0):
    """Processes of decode actors busy with a video (Ray names them in the process title)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = []
        for process in psutil.process_iter(["cmdline"]):
            title = " ".join(process.info["cmdline"] or [])
            if title.startswith("ray::DecodeWorker.decode"):
                busy.append(process)
        if busy:
            return busy
        time.sleep(0.05)
    raise AssertionError("no decode actor started")


def assert_every_row_once(dest, n_rows):
    samples, parquet = read_shards(dest)
    keys = [r["key"] for rows in parquet.values() for r in rows]
    assert len(keys) == len(set(keys)) == n_rows
    assert sorted(samples) == sorted(keys)
    statuses = [r["status"] for rows in parquet.values() for r in rows]
    assert statuses == ["success"] * n_rows
    for key, sample in samples.items():
        meta = json.loads(sample["json"])
        assert len(sample["npy"]) == meta["n_frames"] == len(meta["timestamps"]) > 0, key


def test_decode_actor_killed_mid_shard(cluster, clips, checkpoint, tmp_path):
    table = table_of(tmp_path, clips)
    dest = tmp_path / "killed"
    job = job_for(table, dest, checkpoint)
    thread, result = run_in_thread(job, RayOptions(encoder_cpus=0))
    victim = wait_for_decoding()[0]
    victim.kill()  # SIGKILL, as the kernel's OOM killer would
    thread.join(timeout=300)
    assert "error" not in result, result.get("error")
    assert result["summary"]["successes"] == 10
    assert result["summary"]["redone"] >= 1  # the killed actor's video, decoded again
    assert_every_row_once(dest, 10)


def test_long_videos_in_chunks_within_groups_match_local(cluster, clips, checkpoint, tmp_path):
    """Every frame of 3-5.5 s clips: each video spans several 64-frame items, and items
    carry the tail of one video and the head of the next; embeddings are put back in order."""
    from clip_video_encode.execute.local import encode_dataset

    table = table_of(tmp_path, clips[:4])
    jobs = {}
    for name in ("ray", "local"):
        jobs[name] = EncodeJob(
            table, str(tmp_path / name), FrameOptions(Sampling(fps=30)),
            EncoderOptions(MODEL, pretrained=checkpoint, precision="fp32", batch_size=8),
            samples_per_shard=4, workers=1,
        )  # fmt: skip
    encode_dataset_ray(jobs["ray"], RayOptions(encoder_cpus=0, group_videos=3), progress=False)
    encode_dataset(jobs["local"], progress=False)
    ours, theirs = read_shards(tmp_path / "ray")[0], read_shards(tmp_path / "local")[0]
    assert list(ours) == list(theirs)
    for key, sample in theirs.items():
        assert ours[key]["json"] == sample["json"]
        assert len(sample["npy"]) == json.loads(sample["json"])["n_frames"] >= 90
        np.testing.assert_allclose(ours[key]["npy"], sample["npy"], atol=2e-2, rtol=1e-2)


def test_decode_actor_killed_mid_group(cluster, clips, checkpoint, tmp_path):
    """A group's lost decode is charged to none of its videos (nobody knows which one the
    actor was on): each is decoded again alone, where a loss would be its own."""
    table = table_of(tmp_path, clips)
    dest = tmp_path / "killed_group"
    job = job_for(table, dest, checkpoint)
    thread, result = run_in_thread(job, RayOptions(encoder_cpus=0, group_videos=5,
                                                   max_attempts=1))  # fmt: skip
    victim = wait_for_decoding()[0]
    victim.kill()
    thread.join(timeout=300)
    assert "error" not in result, result.get("error")
    statuses = [r["status"] for rows in read_shards(dest)[1].values() for r in rows]
    # max_attempts=1, yet no row fails unless the kill came with one video left in the group
    assert statuses.count("failed_to_decode") <= 1 and statuses.count("success") >= 9
    assert result["summary"]["redone"] >= 2 or statuses.count("failed_to_decode") == 1
    samples, parquet = read_shards(dest)
    keys = [r["key"] for rows in parquet.values() for r in rows]
    assert len(keys) == len(set(keys)) == 10 and sorted(samples) == sorted(keys)


def test_a_stalled_video_times_out_alone_in_its_group(cluster, clips, checkpoint, tmp_path,
                                                      http_root):  # fmt: skip
    table = table_of(tmp_path, [clips[0], f"{http_root}/stall.mp4", *clips[1:4]])
    dest = tmp_path / "stalled"
    job = job_for(table, dest, checkpoint, timeout=3.0)
    began = time.monotonic()
    summary = encode_dataset_ray(job, RayOptions(encoder_cpus=0, group_videos=5), progress=False)
    assert time.monotonic() - began < 120
    rows = [r for rows in read_shards(dest)[1].values() for r in rows]
    assert [r["status"] for r in rows] == ["success", "timeout"] + ["success"] * 3
    assert "no progress for 3 s" in rows[1]["error_message"]
    assert summary["successes"] == 4


def test_a_download_longer_than_the_stall_limit_is_not_a_stall(
    cluster, clips, checkpoint, tmp_path, http_root, videos
):
    """Decoders say a download is going on (here 4 s under a 2 s limit); silence after some
    bytes is still a stall."""
    slow, halt = f"{http_root}/slow/cfr.mp4", f"{http_root}/halt.mp4"
    table = table_of(tmp_path, [clips[0], slow, halt])
    dest = tmp_path / "slow"
    job = job_for(table, dest, checkpoint, timeout=2.0)
    summary = encode_dataset_ray(job, RayOptions(encoder_cpus=0, group_videos=1), progress=False)
    rows = [r for rows in read_shards(dest)[1].values() for r in rows]
    assert [r["status"] for r in rows] == ["success", "success", "timeout"], rows
    assert summary["successes"] == 2
    frames, record = next(read_videos([videos["cfr.mp4"]], job.frames, workers=0))
    sample = read_shards(dest)[0][rows[1]["key"]]
    assert json.loads(sample["json"])["timestamps"] == list(record["timestamps"])
    assert len(sample["npy"]) == len(frames) > 0


def pipelines_table(tmp_path, clips, rows=12):
    """Several shards per pipeline; a row whose file arrives later and, in its shard, a
    window past the end of its video (no frames: not retried)."""
    paths = [clips[i % len(clips)] for i in range(rows)]
    later = [f"{tmp_path}/arrives-later.mp4,missing,,,train", f"{clips[0]},past,50,60,train"]
    return table_of(tmp_path, paths, later)


@pytest.mark.slow
def test_pipelines_write_the_same_shards_as_the_local_executor(cluster, clips, checkpoint,
                                                               tmp_path):  # fmt: skip
    table = pipelines_table(tmp_path, clips)
    ray_dest, local_dest = tmp_path / "pipelines", tmp_path / "local"
    common = ["--model", MODEL, "--pretrained", checkpoint, "--fps", "4", "--batch-size", "8",
              "--samples-per-shard", "3", "--quiet", "--precision", "fp32"]  # fmt: skip
    pipelines = ["--distributor", "ray", "--pipelines", "2", "--encoders", "2",
                 "--encoder-cpus", "0"]  # fmt: skip
    assert main([table, "--dest", str(ray_dest), *pipelines, *common]) == 1
    assert main([table, "--dest", str(local_dest), "--workers", "1", *common]) == 1
    _, (_, local_parquet) = assert_same_shards(ray_dest, local_dest)
    assert json.loads((ray_dest / "run.json").read_text())["shards"] == 5
    # --retry-failed: the file is there now. The summary counts what the run did (the retried
    # row, a success); the exit code, the dataset, whose no-frames row is not retried: 1.
    shutil.copy(clips[1], tmp_path / "arrives-later.mp4")
    assert main([table, "--dest", str(ray_dest), *pipelines, *common, "--retry-failed"]) == 1
    rows = [r for rows in read_shards(ray_dest)[1].values() for r in rows]
    before = [r for rows in local_parquet.values() for r in rows]
    assert [r["status"] for r in rows] == ["success"] * 13 + ["no_frames"]
    assert rows[:12] == before[:12] and rows[13] == before[13]


@pytest.mark.slow
def test_a_pipeline_killed_mid_shard(cluster, clips, checkpoint, tmp_path):
    """A pipeline (scheduling, writing and committing shards) killed mid-shard: its shard is
    given back and done by a fresh pipeline, every row once, counts from committed shards."""
    table = pipelines_table(tmp_path, clips)
    dest = tmp_path / "pipeline_killed"
    job = job_for(table, dest, checkpoint, samples_per_shard=3)
    thread, result = run_in_thread(job, RayOptions(encoder_cpus=0, encoders=2, pipelines=2))
    wait_for_process("ray::Pipeline.run")
    wait_for_decoding()
    victim = wait_for_process("ray::Pipeline.run")
    victim.kill()
    thread.join(timeout=300)
    assert "error" not in result, result.get("error")
    summary = result["summary"]
    assert summary["videos"] == 14 and summary["successes"] == 12 and summary["failed"] == 2
    assert summary["shards_written"] == 5 and summary["redone"] >= 1
    samples, parquet = read_shards(dest)
    keys = [r["key"] for rows in parquet.values() for r in rows]
    assert len(keys) == len(set(keys)) == 14 and sorted(samples) == sorted(keys)
    statuses = [r["status"] for rows in parquet.values() for r in rows]
    assert statuses.count("success") == 12
    assert not [n for n in os.listdir(dest) if "partial" in n or n.startswith(".")]


def test_worker_node_lost_mid_run(cluster, clips, checkpoint, tmp_path):
    cluster_, workers = cluster
    table = table_of(tmp_path, clips)
    dest = tmp_path / "node_lost"
    job = job_for(table, dest, checkpoint)
    thread, result = run_in_thread(job, RayOptions(encoder_cpus=0))
    wait_for_decoding()
    time.sleep(0.5)
    cluster_.remove_node(workers[1])  # its raylet and every actor on it die
    thread.join(timeout=300)
    assert "error" not in result, result.get("error")
    assert result["summary"]["successes"] == 10
    assert result["summary"]["redone"] >= 1
    assert_every_row_once(dest, 10)


@pytest.mark.parametrize("pipelines", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_driver_killed_then_rerun_resumes(cluster, clips, checkpoint, tmp_path, pipelines):
    """Killed, the driver takes its pipelines with it (Ray kills the actors it owns); a
    rerun resumes at the uncommitted shards."""
    import signal
    import subprocess
    import sys

    cluster_, _ = cluster
    table = table_of(tmp_path, clips)
    dest = tmp_path / "resumed"
    per_shard = 4 if pipelines == 1 else 2
    argv = [sys.executable, "-m", "clip_video_encode.cli", table, "--dest", str(dest),
            "--distributor", "ray", "--model", MODEL, "--pretrained", checkpoint, "--fps", "4",
            "--batch-size", "8", "--samples-per-shard", str(per_shard), "--precision", "fp32",
            "--encoder-cpus", "0", "--quiet", "--pipelines", str(pipelines),
            "--encoders", str(pipelines)]  # fmt: skip
    env = {**os.environ, "RAY_ADDRESS": cluster_.address}
    driver = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (dest / "00000_stats.json").exists() and time.monotonic() < deadline:
        assert driver.poll() is None, driver.stderr.read().decode()
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    last = 10 // per_shard - 1
    assert not (dest / f"{last:05d}_stats.json").exists()  # killed mid-run
    job = job_for(table, dest, checkpoint, samples_per_shard=per_shard)
    options = RayOptions(encoder_cpus=0, pipelines=pipelines, encoders=pipelines)
    summary = encode_dataset_ray(job, options, progress=False)
    assert summary["shards_skipped"] >= 1 and summary["shards_written"] >= 1
    assert_every_row_once(dest, 10)
    assert not [n for n in os.listdir(dest) if "partial" in n or n.startswith(".")]


def test_ray_job_entry_point(cluster, clips, checkpoint, tmp_path, capsys):
    from jobs.encode import run

    table = table_of(tmp_path, clips[:2])
    dest = tmp_path / "job"
    code = run([table, "--dest", str(dest), "--model", MODEL, "--pretrained", checkpoint,
                "--num-frames", "2", "--encoder-cpus", "0", "--quiet"])  # fmt: skip
    assert code == 0
    assert "2 succeeded" in capsys.readouterr().err
    assert json.loads((dest / "run.json").read_text())["model"] == MODEL
    assert [r["n_frames"] for r in pq.read_table(dest / "00000.parquet").to_pylist()] == [2, 2]


def test_bad_weights_are_a_clear_error_before_any_output(cluster, clips, tmp_path, capsys):
    table = table_of(tmp_path, clips[:1])
    dest = tmp_path / "never"
    code = main([table, "--dest", str(dest), "--distributor", "ray", "--model", MODEL,
                 "--pretrained", "no_such_tag", "--encoder-cpus", "0", "--quiet"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "'no_such_tag' is neither a file nor an open_clip tag" in err
    assert "Traceback" not in err and not dest.exists()


def test_a_device_the_encoders_cannot_use_is_a_usage_error(cluster, clips, checkpoint,
                                                             tmp_path, capsys):  # fmt: skip
    """--device checked where the model loads, on the encoder actors: a GPU they lack is the
    usage error the local executor gives (exit 2, naming --device), nothing written."""
    table = table_of(tmp_path, clips[:1])
    dest = tmp_path / "never"
    code = main([table, "--dest", str(dest), "--distributor", "ray", "--model", MODEL,
                 "--pretrained", checkpoint, "--device", "cuda", "--encoder-cpus", "0",
                 "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    assert "--device cuda cannot be used" in err
    assert "Traceback" not in err and not dest.exists()


def wait_for_process(prefix, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in psutil.process_iter(["cmdline"]):
            if " ".join(process.info["cmdline"] or []).startswith(prefix):
                return process
        time.sleep(0.02)
    raise AssertionError(f"no process {prefix!r} appeared")


def test_tar_input_encoder_killed_after_decoding(cluster, clips, checkpoint, tmp_path,
                                                 monkeypatch):  # fmt: skip
    """Videos whose decode had ended when their encoder died are decoded again from their
    tar member's scratch copy, which stays until their embeddings are in. Members go to the
    decoders in pieces (here of 16 KiB: the driver never holds a whole member)."""
    import webdataset as wds

    monkeypatch.setattr("clip_video_encode.execute.ray_lane.PUT_BYTES", 16 << 10)

    src = tmp_path / "src"
    src.mkdir()
    for t in range(2):
        with wds.TarWriter(str(src / f"{t:05d}.tar")) as sink:
            for i in range(5):
                with open(clips[5 * t + i], "rb") as f:
                    sink.write({"__key__": f"{t}{i:04d}", "mp4": f.read(), "txt": f"clip {i}"})
    dest = tmp_path / "tar_encoder_lost"
    job = job_for(str(src / "{00000..00001}.tar"), dest, checkpoint)
    thread, result = run_in_thread(job, RayOptions(encoder_cpus=0))
    wait_for_process("ray::EncodeWorker.encode").kill()
    thread.join(timeout=300)
    assert "error" not in result, result.get("error")
    assert result["summary"]["successes"] == 10 and result["summary"]["redone"] >= 1
    assert_every_row_once(dest, 10)


@pytest.mark.slow
def test_tar_input_with_pipelines_writes_the_same_shards_as_local(cluster, clips, checkpoint,
                                                                  tmp_path):  # fmt: skip
    """Input tars are read by the pipelines (on the driver's machine) and their members
    handed to decoders on other nodes as bytes: the same shards as the local executor, a
    sample without a video included."""
    import webdataset as wds

    src = tmp_path / "src"
    src.mkdir()
    for t in range(3):
        with wds.TarWriter(str(src / f"{t:05d}.tar")) as sink:
            for i in range(3):
                with open(clips[3 * t + i], "rb") as f:
                    sink.write({"__key__": f"{t}{i:04d}", "mp4": f.read(), "txt": f"clip {i}"})
            if t == 1:
                sink.write({"__key__": f"{t}9999", "txt": "no video"})
    common = ["--model", MODEL, "--pretrained", checkpoint, "--fps", "4", "--batch-size", "8",
              "--quiet", "--precision", "fp32"]  # fmt: skip
    tars = str(src / "{00000..00002}.tar")
    ray_dest, local_dest = tmp_path / "pipelines", tmp_path / "local"
    pipelines = ["--distributor", "ray", "--pipelines", "2", "--encoders", "2",
                 "--encoder-cpus", "0"]  # fmt: skip
    assert main([tars, "--dest", str(ray_dest), *pipelines, *common]) == 1
    assert main([tars, "--dest", str(local_dest), "--workers", "1", *common]) == 1
    _, (local_samples, _) = assert_same_shards(ray_dest, local_dest)
    assert len(local_samples) == 10


def decode_scratch() -> set[str]:
    import tempfile

    prefix = "clip-video-encode-decode-"
    return {n for n in os.listdir(tempfile.gettempdir()) if n.startswith(prefix)}


def test_native_sizes_and_caption_similarity_match_local(
    cluster, clips, checkpoint, tmp_path, videos
):
    """Frames of two sizes in one run (batched by shape) and caption similarity computed from
    caption embeddings asked for asynchronously: the same values as the local executor."""
    table = table_of(tmp_path, [clips[0], videos["portrait.mp4"], clips[1]])
    common = ["--model", MODEL, "--pretrained", checkpoint, "--fps", "4", "--batch-size", "8",
              "--quiet", "--precision", "fp32", "--resize-mode", "native",
              "--caption-similarity"]  # fmt: skip
    ray_dest, local_dest = tmp_path / "ray", tmp_path / "local"
    before = decode_scratch()
    assert main([table, "--dest", str(ray_dest), "--distributor", "ray", *common]) == 0
    assert decode_scratch() <= before  # the decode actors removed their scratch folders
    assert main([table, "--dest", str(local_dest), "--workers", "1", *common]) == 0
    ours, _ = read_shards(ray_dest)
    theirs, _ = read_shards(local_dest)
    assert list(ours) == list(theirs) and len(ours) == 3
    for key in ours:
        a, b = json.loads(ours[key]["json"]), json.loads(theirs[key]["json"])
        assert a["n_frames"] == b["n_frames"] > 0
        np.testing.assert_allclose(a["caption_similarity"], b["caption_similarity"], atol=2e-3)


def test_int8_engine_on_ray_matches_local(cluster, clips, checkpoint, tmp_path):
    """The encoder actors take the engine options: the same check, recorded in run.json, and
    the embeddings of the local executor's int8 run, bit for bit. Dynamic quantisation scales
    a batch's activations together, so a frame's int8 embedding depends on the frames beside
    it: both executors batch by the same rule (clip_video_encode.plan.batching)."""
    pytest.importorskip("onnxruntime")
    table = table_of(tmp_path, clips[:3])
    common = ["--model", MODEL, "--pretrained", checkpoint, "--fps", "4", "--batch-size", "8",
              "--samples-per-shard", "4", "--quiet", "--precision", "int8",
              "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    ray_dest, local_dest = tmp_path / "ray", tmp_path / "local"
    assert main([table, "--dest", str(ray_dest), "--distributor", "ray", *common]) == 0
    assert main([table, "--dest", str(local_dest), "--workers", "1", *common]) == 0
    ray_run = json.loads((ray_dest / "run.json").read_text())
    assert ray_run["engine"] == "onnxruntime" and ray_run["fidelity"]["min_cosine"] >= 0.99
    ray_samples, _ = read_shards(ray_dest)
    local_samples, _ = read_shards(local_dest)
    assert list(ray_samples) == list(local_samples)
    for key, ours in ray_samples.items():
        a, b = ours["npy"].astype(np.float32), local_samples[key]["npy"].astype(np.float32)
        np.testing.assert_array_equal(a, b)
