"""Invariants of a destination across runs: a run killed anywhere and resumed gives the
uninterrupted run's bytes, and a rerun that would write other bytes is refused before it
changes anything."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import MODEL

from clip_video_encode.cli import main

NAMES = ["ntsc.mp4", "cfr.mp4", "vfr.mp4", "vp9.webm", "portrait.mp4", "one_frame.mp4"]


@pytest.fixture()
def listing(videos, tmp_path):
    path = tmp_path / "videos.txt"
    path.write_text("\n".join(videos[n] for n in NAMES))
    return path


@pytest.fixture(scope="module")
def encoded(videos, tmp_path_factory, checkpoint):
    """One finished destination and its listing, encoded once for the module."""
    root = tmp_path_factory.mktemp("encoded")
    path = root / "videos.txt"
    path.write_text("\n".join(videos[n] for n in NAMES))
    assert main(argv(path, root / "out", checkpoint)) == 0
    return path, root / "out"


@pytest.fixture()
def finished(encoded, tmp_path):
    """The listing a finished destination was made from (run.json names its path), and a
    copy of that destination."""
    listing, dest = encoded
    shutil.copytree(dest, tmp_path / "out")
    return listing, tmp_path / "out"


def argv(listing, dest, checkpoint, *extra):
    return [str(listing), "--dest", str(dest), "--model", MODEL, "--pretrained", checkpoint,
            "--fps", "2", "--samples-per-shard", "2", "--batch-size", "8", "--precision",
            "fp32", "--workers", "2", "--quiet", *extra]  # fmt: skip


def snapshot(dest):
    """Every file of a destination with its bytes (the lease file aside)."""
    out = {}
    for root, _, files in os.walk(dest):
        for name in files:
            path = os.path.join(root, name)
            out[os.path.relpath(path, dest)] = open(path, "rb").read()
    return out


def data_files(dest):
    return {k: v for k, v in snapshot(dest).items() if k.endswith((".tar", ".parquet"))}


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_killed_at_a_random_moment_then_resumed(listing, tmp_path, checkpoint, seed):
    """SIGKILL at a random moment of the run (model loading, decoding, a commit), then the
    same command: the destination holds the uninterrupted run's tars and parquets."""
    reference = tmp_path / "reference"
    began = time.monotonic()
    assert main(argv(listing, reference, checkpoint)) == 0
    took = time.monotonic() - began
    dest = tmp_path / "resumed"
    command = [sys.executable, "-m", "clip_video_encode.cli", *argv(listing, dest, checkpoint)]
    run = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    # A subprocess also pays for imports and model loading: up to about twice as long.
    time.sleep(random.Random(seed).uniform(0.5, 2 * took))
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    assert main(argv(listing, dest, checkpoint)) == 0
    assert data_files(dest) == data_files(reference)


@pytest.mark.parametrize(
    "change",
    [
        ("--fps", "3"),
        ("--size", "64"),
        ("--samples-per-shard", "3"),
        ("--precision", "bf16"),
        ("--max-frames", "3"),
        ("--output-format", "files"),
        ("--batch-size", "4"),
    ],
    ids=lambda c: c[0],
)
def test_a_rerun_with_other_settings_is_refused_and_changes_nothing(
    finished, checkpoint, change, capsys
):
    listing, dest = finished
    before = snapshot(dest)
    capsys.readouterr()
    assert main([*argv(listing, dest, checkpoint), *change]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "--dest" in err, err
    assert snapshot(dest) == before


def test_a_rerun_on_another_input_is_refused_and_changes_nothing(
    finished, checkpoint, videos, capsys
):
    listing, dest = finished
    before, text = snapshot(dest), listing.read_text()
    listing.write_text("\n".join(videos[n] for n in reversed(NAMES)))  # same rows, reordered
    try:
        capsys.readouterr()
        assert main(argv(listing, dest, checkpoint)) == 2
        assert "--replan" in capsys.readouterr().err
    finally:
        listing.write_text(text)  # the module's other tests read it
    assert snapshot(dest) == before


def test_a_rerun_without_batch_size_resumes_with_the_destinations(finished, checkpoint):
    """The batch size a machine picks by itself is the destination's on a rerun: the same
    batches, the same bytes (the batch moves embeddings by an ulp)."""
    listing, dest = finished
    before = data_files(dest)
    assert json.loads((dest / "run.json").read_text())["batch_size"] == 8
    (dest / "00001_stats.json").unlink()  # an interrupted shard, done again
    command = argv(listing, dest, checkpoint)
    i = command.index("--batch-size")
    assert main(command[:i] + command[i + 2 :]) == 0
    assert data_files(dest) == before


def test_a_run_json_from_before_batches_were_recorded_resumes(finished, checkpoint):
    listing, dest = finished
    run = json.loads((dest / "run.json").read_text())
    del run["batch_size"], run["batch_group"]
    (dest / "run.json").write_text(json.dumps(run))
    (dest / "00002_stats.json").unlink()
    assert main(argv(listing, dest, checkpoint)) == 0
    assert (dest / "00002_stats.json").exists()
