"""--engine onnxruntime: the exported tower (cached by weights), int8 checked against torch
fp32 on the first batch, recorded in run.json, a resume with another engine refused, and
decode workers that never load torch or onnxruntime."""

import json
import os
import threading

import numpy as np
import pytest
from conftest import MODEL

pytest.importorskip("onnxruntime")
psutil = pytest.importorskip("psutil")

from clip_video_encode.cli import main  # noqa: E402
from clip_video_encode.read import iter_samples  # noqa: E402


def argv(listing, dest, checkpoint, cache, *extra):
    return [str(listing), "--dest", str(dest), "--model", MODEL, "--pretrained", checkpoint,
            "--fps", "4", "--batch-size", "16", "--workers", "1", "--quiet",
            "--cache-dir", str(cache), *extra]  # fmt: skip


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One export cache for the tests that do not count exports (each export takes seconds)."""
    return tmp_path_factory.mktemp("onnx_cache")


@pytest.fixture(scope="module")
def listing(videos, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "videos.txt"
    path.write_text("\n".join(videos[n] for n in ("cfr.mp4", "ntsc.mp4", "long.mp4")))
    return path


def embeddings_of(dest):
    return {key: e.astype(np.float32) for key, e, _ in iter_samples(str(dest))}


def cosines(a, b):
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_int8_matches_torch_is_recorded_and_binds_the_destination(
    listing, checkpoint, tmp_path, shared_cache, capsys
):
    cache = shared_cache
    torch_dest, int8_dest, fp32_dest = tmp_path / "torch", tmp_path / "int8", tmp_path / "ort32"
    assert main(argv(listing, torch_dest, checkpoint, cache, "--precision", "fp32")) == 0
    # Decode workers stay lean: they must never map torch's or onnxruntime's libraries.
    seen, done = {}, threading.Event()

    def watch():
        me = psutil.Process()
        while not done.is_set():
            for child in me.children(recursive=True):
                try:
                    maps = open(f"/proc/{child.pid}/maps").read()
                except OSError:
                    continue
                seen[child.pid] = ("libtorch" in maps, "onnxruntime" in maps)
            done.wait(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        assert main(argv(listing, int8_dest, checkpoint, cache, "--precision", "int8")) == 0
    finally:
        done.set()
        watcher.join()
    assert seen and not any(torch or ort for torch, ort in seen.values()), seen
    err = capsys.readouterr().err
    assert "onnxruntime int8 against torch fp32 on the first 16 frames" in err
    run = json.loads((int8_dest / "run.json").read_text())
    assert run["engine"] == "onnxruntime" and run["precision"] == "int8"
    fidelity = run["fidelity"]
    assert fidelity["frames"] == 16 and fidelity["reference"] == "torch fp32"
    assert 0.99 <= fidelity["min_cosine"] <= fidelity["mean_cosine"] <= 1.0
    # Every frame of every video agrees with torch fp32's embedding.
    ref, got = embeddings_of(torch_dest), embeddings_of(int8_dest)
    assert list(ref) == list(got)
    for key in ref:
        assert cosines(ref[key], got[key]).min() > 0.99
    # fp32 on ONNX Runtime is the same computation as torch's, to float rounding.
    assert main(argv(listing, fp32_dest, checkpoint, cache, "--engine", "onnxruntime")) == 0
    for key, value in embeddings_of(fp32_dest).items():
        assert cosines(ref[key], value).min() > 0.9999
    # One export per weights, kept: fp32 and its int8 quantisation.
    files = sorted(os.listdir(cache / "onnx"))
    assert [f.rsplit("-", 1)[1] for f in files] == ["fp32.onnx", "int8.onnx"]
    # The destination is bound to its engine and precision.
    assert main(argv(listing, int8_dest, checkpoint, cache, "--precision", "fp32")) == 2
    err = capsys.readouterr().err
    assert "engine: 'onnxruntime' there, 'torch' now" in err and "precision: 'int8' there" in err
    assert main(argv(listing, int8_dest, checkpoint, cache, "--precision", "int8")) == 0  # resumes


def test_other_weights_get_their_own_export(listing, checkpoint, tmp_path):
    import open_clip
    import torch

    torch.manual_seed(1)
    other = tmp_path / "other.pt"
    torch.save(open_clip.create_model(MODEL, pretrained=None).state_dict(), other)
    cache = tmp_path / "cache"
    for weights, dest in ((checkpoint, "a"), (str(other), "b")):
        assert main(argv(listing, tmp_path / dest, weights, cache, "--engine", "onnxruntime")) == 0
    exports = os.listdir(cache / "onnx")
    assert len(exports) == 2 and len({name.split("-")[-2] for name in exports}) == 2
    a, b = embeddings_of(tmp_path / "a"), embeddings_of(tmp_path / "b")
    key = next(iter(a))
    assert cosines(a[key], b[key]).max() < 0.99  # not the first weights' export reused


def test_a_failed_fidelity_check_stops_the_run(listing, checkpoint, tmp_path, shared_cache, capsys):
    dest = tmp_path / "out"
    code = main(argv(listing, dest, checkpoint, shared_cache, "--precision", "int8",
                     "--min-cosine", "0.999999"))  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    assert "embeddings differ from torch fp32's" in err and "below 0.999999" in err
    assert not list(iter_samples(str(dest)))  # nothing committed


def test_engine_rules_and_an_older_destination(listing, checkpoint, tmp_path, shared_cache, capsys):
    from clip_video_encode.models.encoder import resolve_engine

    assert resolve_engine("auto", "int8", "cpu") == "onnxruntime"
    assert resolve_engine("auto", "auto", "cpu") == "torch"
    with pytest.raises(ValueError, match="int8 runs on ONNX Runtime"):
        resolve_engine("torch", "int8", "cpu")
    with pytest.raises(ValueError, match="runs on the CPU"):
        resolve_engine("onnxruntime", "fp32", "cuda")
    # A destination written before run.json recorded the engine resumes with torch.
    dest = tmp_path / "old"
    common = argv(listing, dest, checkpoint, shared_cache, "--precision", "fp32")
    assert main(common) == 0
    run = json.loads((dest / "run.json").read_text())
    del run["engine"]
    (dest / "run.json").write_text(json.dumps(run))
    assert main(common) == 0
    assert main([*common, "--engine", "onnxruntime"]) == 2
    assert "engine: 'torch' there, 'onnxruntime' now" in capsys.readouterr().err
