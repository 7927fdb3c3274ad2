"""clip-video-encode: the encoder, the shards, resume, readers and S3, with real components."""

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

from conftest import MODEL  # noqa: E402  (the checkpoint fixture's architecture)

from clip_video_encode.cli import main  # noqa: E402
from clip_video_encode.models.encoder import Encoder, EncoderLoadError, EncoderOptions  # noqa: E402
from clip_video_encode.read import EmbeddingDataset, iter_samples, shard_urls  # noqa: E402
from video2numpy import FrameOptions, Resize, Sampling, read_videos  # noqa: E402
from video2numpy.synth import write_video  # noqa: E402


@pytest.fixture(scope="session")
def textured(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("tex") / "textured.mp4")
    write_video(path, n_frames=60, fps=30, width=320, height=240, texture=True)
    return path


def cosine(a, b):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


def frames_of(path, resize):
    options = FrameOptions(Sampling(num_frames=6), resize)
    return next(read_videos([path], options, workers=0))[0]


def test_matches_open_clip_preprocess_and_encode_image(encoder, checkpoint, textured):
    from PIL import Image

    model, _, preprocess = open_clip.create_model_and_transforms(MODEL, pretrained=checkpoint)
    assert encoder.model is None  # the image tower alone is kept
    for resize in (Resize(224), Resize(0, "native")):  # ready-cropped, and 320x240 frames
        frames = frames_of(textured, resize)
        reference_input = torch.stack([preprocess(Image.fromarray(f)) for f in frames])
        with torch.inference_mode():
            reference = model.eval().encode_image(reference_input).numpy()
        ours = encoder.encode(frames)
        assert ours.dtype == np.float16 and ours.shape == (6, encoder.embed_dim)
        assert cosine(ours, reference).min() >= 0.99


def test_low_precision_agrees_with_fp32(encoder, checkpoint, textured):
    frames = frames_of(textured, Resize(224))
    reference = encoder.encode(frames)
    bf16 = Encoder(EncoderOptions(MODEL, pretrained=checkpoint, precision="bf16"))
    assert bf16.precision == "bf16"
    assert cosine(bf16.encode(frames), reference).min() >= 0.99


@pytest.mark.parametrize("amx", [False, True])
def test_auto_precision_on_a_cpu_is_bf16_only_with_amx(monkeypatch, amx):
    """AVX-512 BF16 without AMX made bf16 half as fast as fp32: auto must not pick it there."""
    import torch

    from clip_video_encode.models.encoder import resolve_batch_size, resolve_precision

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    precision = resolve_precision("auto", "cpu")
    assert precision == ("bf16" if amx else "fp32")
    assert resolve_batch_size(None, "cpu", precision) == (
        128 if amx else min(128, max(16, 8 * torch.get_num_threads()))
    )
    assert resolve_precision("auto", "cuda") == "fp16"
    assert resolve_precision("bf16", "cpu") == "bf16"  # asked for by name: always honoured


def test_auto_precision_resumes_a_destination_with_its_own(
    videos, tmp_path, checkpoint, monkeypatch, capsys
):
    """A destination begun in fp32 (another machine, or auto before it needed AMX) resumes
    with fp32 under ``--precision auto`` where auto would now pick bf16, instead of being
    refused for another precision; a new destination gets what auto picks."""
    import torch

    dest = tmp_path / "begun"
    assert encode(videos["cfr.mp4"], dest, checkpoint, "--precision", "fp32") == 0
    next(dest.glob("*.tar")).unlink()  # as if the run stopped before committing its shard
    next(dest.glob("*_stats.json")).unlink()
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    capsys.readouterr()
    assert encode(videos["cfr.mp4"], dest, checkpoint) == 0, capsys.readouterr().err
    assert json.loads((dest / "run.json").read_text())["precision"] == "fp32"
    assert next(dest.glob("*.tar")).exists()
    fresh = tmp_path / "fresh"
    assert encode(videos["one_frame.mp4"], fresh, checkpoint) == 0
    assert json.loads((fresh / "run.json").read_text())["precision"] == "bf16"


def test_weights_rules(checkpoint):
    with pytest.raises(EncoderLoadError, match="neither a file nor an open_clip tag"):
        Encoder(EncoderOptions(MODEL, pretrained="no_such_tag"))
    with pytest.raises(EncoderLoadError, match="unknown open_clip model"):
        Encoder(EncoderOptions("ViT-Nope-99", pretrained="none"))
    # A real tag that cannot be downloaded here: a clear error, never random weights.
    with pytest.raises(EncoderLoadError, match="--pretrained none") as exc:
        Encoder(EncoderOptions("ViT-B-32", pretrained="laion2b_s34b_b79k"))
    assert "local checkpoint file" in str(exc.value)
    assert EncoderOptions("ViT-B-32").resolved_pretrained() == "laion2b_s34b_b79k"
    # The same checkpoint file gives the same embeddings.
    a = Encoder(EncoderOptions(MODEL, pretrained=checkpoint, precision="fp32"))
    b = Encoder(EncoderOptions(MODEL, pretrained=checkpoint, precision="fp32"))
    x = np.random.default_rng(0).integers(0, 255, (2, 224, 224, 3), dtype=np.uint8)
    assert np.array_equal(a.encode(x), b.encode(x))


def mapped_ranges(path):
    with open("/proc/self/maps") as maps:
        lines = [line.split() for line in maps if line.rstrip().endswith(path)]
    return [tuple(int(x, 16) for x in line[0].split("-")) for line in lines]


def test_checkpoint_is_memory_mapped_into_the_parameters(checkpoint, tmp_path):
    from clip_video_encode.models.weights import load_model

    state = torch.load(checkpoint)
    image_only = load_model(MODEL, checkpoint, "cpu", text=False)
    for name, tensor in image_only.visual.state_dict().items():
        assert torch.equal(tensor, state[f"visual.{name}"]), name
    # The kept tower is copied out of the file's mapping (a file overwritten in place would
    # change a mapped model); the unread text tower's weights stay mapped, never read.
    pointer = image_only.visual.conv1.weight.data_ptr()
    assert not any(lo <= pointer < hi for lo, hi in mapped_ranges(checkpoint))
    text_pointer = image_only.transformer.resblocks[0].mlp.c_fc.weight.data_ptr()
    assert any(lo <= text_pointer < hi for lo, hi in mapped_ranges(checkpoint))
    assert image_only.attn_mask.is_meta  # a text-tower buffer that was never built
    # With the text tower: the same text embeddings as open_clip's own loading.
    reference = open_clip.create_model(MODEL, pretrained=checkpoint).eval()
    tokens = open_clip.get_tokenizer(MODEL)(["a dog catches a frisbee"])
    encoder = Encoder(EncoderOptions(MODEL, pretrained=checkpoint, precision="fp32", text=True))
    with torch.inference_mode():
        expected = reference.encode_text(tokens).numpy()
    assert np.allclose(encoder.encode_text(["a dog catches a frisbee"]), expected, atol=1e-5)
    # A checkpoint in torch's older (non-zip) format cannot be memory-mapped: loaded as usual.
    legacy = tmp_path / "legacy.pt"
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    model = load_model(MODEL, str(legacy), "cpu", text=False)
    assert torch.equal(model.visual.conv1.weight, state["visual.conv1.weight"])


@pytest.fixture()
def table(videos, tmp_path):
    bad_caption = "caf\xe9 ol\xe9".encode("latin-1")  # not UTF-8
    rows = {
        "location": [
            videos["cfr.mp4"],
            videos["missing.mp4"],
            videos["vp9.webm"],
            videos["text.mp4"],
            videos["ntsc.mp4"],
            videos["vfr.mp4"],
        ],
        "caption": [b"a clip", b"", bad_caption, b"not a video", b"window", b"vfr"],
        "id": ["a", "b", "../../escape", "a", "e", "f"],  # duplicate and hostile ids
        "start": [None, None, None, None, 2.0, None],
        "end": [None, None, None, None, 4.0, None],
        "split": ["train", "train", "train", "val", "val", "val"],
        "label": [1, 2, 3, 4, 5, 6],
    }
    path = tmp_path / "videos.parquet"
    pq.write_table(pa.table(rows), path)
    return str(path)


def run_cli(table, dest, checkpoint, *extra):
    return main(
        [
            table,
            "--dest",
            str(dest),
            "--model",
            MODEL,
            "--pretrained",
            checkpoint,
            "--fps",
            "2",
            "--samples-per-shard",
            "3",
            "--batch-size",
            "16",
            "--workers",
            "2",
            "--quiet",
            "--save-columns",
            "label",
            "--encoding",  # the captions are latin-1 bytes (one is not UTF-8)
            "latin-1",
            *extra,
        ]
    )


def encode(src, dest, checkpoint, *extra):
    """The CLI with the test model, 2 fps, one decode worker, no progress bar."""
    argv = [str(src), "--dest", str(dest), "--model", MODEL, "--pretrained", checkpoint]
    return main([*argv, "--fps", "2", "--workers", "1", "--quiet", *extra])


def test_dataset_layout(table, tmp_path, checkpoint, encoder, videos, capsys):
    dest = tmp_path / "out"
    assert run_cli(table, dest, checkpoint, "--caption-similarity") == 1  # two bad rows
    assert "6 videos" in capsys.readouterr().err
    assert sorted(os.listdir(dest)) == [
        "00000.parquet",
        "00000.tar",
        "00000_stats.json",
        "00001.parquet",
        "00001.tar",
        "00001_stats.json",
        "README.md",
        "run.json",
        "splits.csv",
    ]
    names = tarfile.open(dest / "00000.tar").getnames()
    # Every row has the same members; the failed one's npy holds zero frames.
    assert names == [f"00000{i}.{ext}" for i in range(3) for ext in ("json", "npy", "txt")]
    failed = tarfile.open(dest / "00000.tar").extractfile("000001.npy").read()
    assert np.load(io.BytesIO(failed)).shape == (0, 384)
    stats = json.loads((dest / "00000_stats.json").read_text())
    assert stats["count"] == 3 and stats["successes"] == 2
    assert stats["status_dict"] == {"failed_to_fetch": 1, "success": 2}
    assert (dest / "splits.csv").read_text() == "tar_file,split\n00000.tar,train\n00001.tar,val\n"
    run = json.loads((dest / "run.json").read_text())
    assert run["model"] == MODEL and run["embed_dim"] == 384 and run["normalized"] is False
    assert run["sampling"]["fps"] == 2 and run["resize"]["size"] == 224

    samples = {k: (e, m) for k, e, m in iter_samples(str(dest), include_failed=True)}
    assert list(samples) == ["000000", "000001", "000002", "000010", "000011", "000012"]
    emb, meta = samples["000000"]
    assert emb.shape == (6, 384) and emb.dtype == np.float16
    assert meta["timestamps"] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5] and meta["caption"] == "a clip"
    assert meta["label"] == 1 and meta["split"] == "train" and meta["id"] == "a"
    assert len(meta["caption_similarity"]) == 6
    # The stored embeddings are the encoder's for video2numpy's frames of that video.
    frames = next(read_videos([videos["cfr.mp4"]], FrameOptions(Sampling(fps=2)), workers=0))[0]
    assert cosine(emb, encoder.encode(frames)).min() > 0.999
    assert samples["000001"][0] is None
    assert samples["000001"][1]["status"] == "failed_to_fetch"
    assert samples["000002"][1]["id"] == "../../escape"  # kept as data, never as a path
    assert samples["000002"][1]["caption"] == "caf\xe9 ol\xe9"
    assert samples["000010"][1]["status"] == "failed_to_decode"
    window = samples["000011"][1]
    assert window["start"] == 2.0 and window["timestamps"] == pytest.approx(
        [2.002, 2.502, 3.003, 3.504], abs=1e-3
    )
    parquet = pq.read_table(dest / "00001.parquet").to_pylist()
    assert [r["status"] for r in parquet] == ["failed_to_decode", "success", "success"]
    assert [r["label"] for r in parquet] == [4, 5, 6]
    assert all(not p.startswith("..") for p in os.listdir(tmp_path))

    # A rerun resumes (nothing to do; exit 1: the dataset holds failed rows); other settings
    # are refused.
    assert run_cli(table, dest, checkpoint, "--caption-similarity") == 1
    assert "2 already done (2 of their rows failed)" in capsys.readouterr().err
    assert run_cli(table, dest, checkpoint) == 2  # without --caption-similarity
    assert "other settings" in capsys.readouterr().err


def test_readers(table, tmp_path, checkpoint, videos):
    dest = tmp_path / "out"
    run_cli(table, dest, checkpoint)
    loader = torch.utils.data.DataLoader(EmbeddingDataset(str(dest), length=4), batch_size=4)
    batch = next(iter(loader))
    assert batch["embeddings"].shape == (4, 4, 384) and batch["mask"].shape == (4, 4)
    assert batch["mask"].sum(1).tolist() == [4, 4, 4, 4]  # 6 frames thinned to 4
    assert batch["key"] == ["000000", "000002", "000011", "000012"]
    assert batch["timestamps"][0].tolist() == [0.0, 0.5, 1.5, 2.0]  # frames 0, 1, 3, 4 of 6

    import webdataset as wds

    keys = [s["__key__"] for s in wds.WebDataset(shard_urls(str(dest)), shardshuffle=False)]
    assert keys == ["000000", "000001", "000002", "000010", "000011", "000012"]

    import datasets

    # HF infers the json schema from the first 5 samples, so rows must share field types:
    # here every row succeeds and none has a window.
    good = tmp_path / "good.txt"
    good.write_text("\n".join([videos["cfr.mp4"], videos["vp9.webm"], videos["vfr.mp4"]]))
    hf_dest = tmp_path / "hf"
    assert encode(good, hf_dest, checkpoint) == 0
    hf = datasets.load_dataset(
        "webdataset", data_files={"train": shard_urls(str(hf_dest))}, split="train"
    )
    assert len(hf) == 3 and hf[0]["__key__"] == "000000000"  # 1000 per shard: 5 + 4 digits
    assert np.asarray(hf[0]["npy"]).shape == (6, 384)
    assert hf[1]["json"]["timestamps"][:2] == [0.0, 0.5]


def test_decode_workers_send_at_most_one_batch_at_a_time(videos, tmp_path, checkpoint, monkeypatch):
    """A chunk larger than a batch only waits in the driver (memory for nothing): chunks are cut
    to the batch, and the frames that come out do not change."""
    import clip_video_encode.execute.local as local

    sizes = []
    real = local.stream_videos

    def spy(sources, options, *args):
        for chunk in real(sources, options, *args):
            sizes.append(len(chunk.frames))
            yield chunk

    monkeypatch.setattr(local, "stream_videos", spy)
    out = {}
    for batch in (4, 64):
        sizes.clear()
        dest = tmp_path / f"batch{batch}"
        assert encode(videos["long.mp4"], dest, checkpoint, "--batch-size", str(batch),
                      "--precision", "fp32") == 0  # fmt: skip
        ((_, embeddings, meta),) = iter_samples(str(dest))
        assert sum(sizes) == len(embeddings) == 80  # 40 s at 2 fps
        assert max(sizes) == min(batch, 64)  # 64: video2numpy's own chunk
        out[batch] = embeddings, meta["timestamps"]
    assert out[4][1] == out[64][1]
    assert cosine(out[4][0], out[64][0]).min() > 0.999


@pytest.mark.slow
def test_sigkill_then_rerun_equals_an_uninterrupted_run(videos, tmp_path, checkpoint):
    sources = [
        videos[n]
        for n in [
            "cfr.mp4",
            "vp9.webm",
            "ntsc.mp4",
            "long.mp4",
            "vfr.mp4",
            "portrait.mp4",
            "missing.mp4",
            "one_frame.mp4",
        ]
    ]
    listing = tmp_path / "videos.txt"
    listing.write_text("\n".join(sources))
    args = [
        "-m",
        "clip_video_encode.cli",
        str(listing),
        "--model",
        MODEL,
        "--pretrained",
        checkpoint,
        "--fps",
        "4",
        "--samples-per-shard",
        "2",
        "--batch-size",
        "8",
        "--workers",
        "1",
        "--quiet",
        "--precision",
        "fp32",
    ]
    clean = tmp_path / "clean"
    subprocess.run([sys.executable, *args, "--dest", str(clean)], check=False, timeout=300)

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, *args, "--dest", str(killed)], start_new_session=True)
    deadline = time.monotonic() + 120
    while not (killed / "00000_stats.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its decode workers, mid-run
    proc.wait()
    assert not (killed / "00003_stats.json").exists(), "the run finished before the kill"
    subprocess.run([sys.executable, *args, "--dest", str(killed)], check=False, timeout=300)

    a = list(iter_samples(str(clean), include_failed=True))
    b = list(iter_samples(str(killed), include_failed=True))
    assert [k for k, _, _ in a] == [k for k, _, _ in b] and len(a) == 8
    for (_, ea, ma), (_, eb, mb) in zip(a, b, strict=True):
        assert ma["status"] == mb["status"] and ma["timestamps"] == mb["timestamps"]
        if ea is not None:
            np.testing.assert_allclose(ea.astype(np.float32), eb.astype(np.float32), atol=2e-3)
    assert sorted(os.listdir(clean)) == sorted(os.listdir(killed))  # no partial files left


def test_webdataset_tars_as_input(videos, tmp_path, checkpoint):
    import webdataset as wds

    src = tmp_path / "src"
    src.mkdir()

    def video(name):
        with open(videos[name], "rb") as f:
            return f.read()

    samples = {
        "00003": [
            {
                "__key__": "000030000",
                "mp4": video("cfr.mp4"),
                "txt": "first",
                "json": {"url": "https://example.com/a", "key": "000030000", "status": "success"},
            },
            {"__key__": "000030001", "json": {"url": "https://example.com/b"}},  # no video
        ],
        "00004": [
            {"__key__": "000040000", "webm": video("vp9.webm"), "txt": "second"},
            {"__key__": "../evil", "mp4": video("one_frame.mp4"), "txt": "hostile key"},
        ],
    }
    for name, rows in samples.items():
        with wds.TarWriter(str(src / f"{name}.tar")) as sink:
            for row in rows:
                sink.write(row)
    dest = tmp_path / "out"
    code = encode(src / "{00003..00004}.tar", dest, checkpoint)
    assert code == 1  # the sample without a video
    assert sorted(p for p in os.listdir(dest) if p.endswith(".tar")) == ["00003.tar", "00004.tar"]
    got = {k: (e, m) for k, e, m in iter_samples(str(dest), include_failed=True)}
    assert list(got) == ["000030000", "000030001", "000040000", "___evil"]
    emb, meta = got["000030000"]
    assert emb.shape == (6, 384) and meta["caption"] == "first"
    assert meta["url"] == "https://example.com/a" and meta["status"] == "success"
    assert meta["location"].endswith("00003.tar#000030000.mp4")
    failed = got["000030001"][1]
    assert failed["status"] == "failed_to_fetch" and "no video member" in failed["error_message"]
    assert got["000040000"][1]["caption"] == "second" and got["000040000"][0].shape == (4, 384)
    assert got["___evil"][1]["source_key"] == "../evil"
    stats = json.loads((dest / "00004_stats.json").read_text())
    assert stats["count"] == 2 and stats["successes"] == 2
    assert not (tmp_path / "evil.mp4").exists() and not (tmp_path / "evil").exists()


def test_files_output_format_reads_like_tars(videos, tmp_path, checkpoint):
    listing = tmp_path / "videos.txt"
    listing.write_text("\n".join([videos["cfr.mp4"], videos["missing.mp4"], videos["vfr.mp4"]]))
    shards = ("--samples-per-shard", "2")
    assert encode(listing, tmp_path / "tars", checkpoint, *shards) == 1
    assert encode(listing, tmp_path / "files", checkpoint, *shards, "--output-format", "files") == 1
    assert sorted(os.listdir(tmp_path / "files" / "00000")) == [
        "000000.json",
        "000000.npy",
        "000001.json",
        "000001.npy",
    ]
    a = list(iter_samples(str(tmp_path / "tars"), include_failed=True))
    b = list(iter_samples(str(tmp_path / "files"), include_failed=True))
    assert [(k, m["status"]) for k, _, m in a] == [(k, m["status"]) for k, _, m in b]
    assert len(a) == 3 and np.array_equal(a[0][1], b[0][1])
    assert not any(p.endswith(".partial") for p in os.listdir(tmp_path / "files"))


def test_bad_weights_exit_2_and_write_nothing(videos, tmp_path, capsys):
    dest = tmp_path / "never"
    code = main(
        [
            videos["cfr.mp4"],
            "--dest",
            str(dest),
            "--model",
            MODEL,
            "--pretrained",
            "no_such_tag",
            "--quiet",
        ]
    )
    assert code == 2 and not dest.exists()
    assert "use 'none' for random weights" in capsys.readouterr().err


def test_a_shard_of_only_failures_is_written(videos, tmp_path, checkpoint):
    # Failed rows finish at once, so a shard can be complete before the next is planned.
    listing = tmp_path / "videos.txt"
    names = ["missing.mp4", "text.mp4", "cfr.mp4", "missing.mp4"]
    listing.write_text("\n".join(videos[n] for n in names))
    assert encode(listing, tmp_path / "out", checkpoint, "--samples-per-shard", "2") == 1
    stats = [json.loads((tmp_path / "out" / f"0000{i}_stats.json").read_text()) for i in (0, 1)]
    assert [s["successes"] for s in stats] == [0, 1] and [s["count"] for s in stats] == [2, 2]


def test_a_tags_own_preprocessing_is_kept(checkpoint):
    # Tags such as SigLIP's or some laion ones normalise with their own mean and std; the
    # meta-device loading must keep them as open_clip's create_model does.
    from clip_video_encode.models.weights import _assign_checkpoint

    tag_cfg = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "size": 999}
    model = _assign_checkpoint(MODEL, checkpoint, tag_cfg, text=False)
    cfg = open_clip.get_model_preprocess_cfg(model)
    assert tuple(cfg["mean"]) == (0.5, 0.5, 0.5) and tuple(cfg["std"]) == (0.5, 0.5, 0.5)
    assert tuple(cfg["size"]) == (224, 224)  # the model's own input size, not the tag's


@pytest.mark.parametrize("module", ["clip_video_encode.cli", "video2numpy.cli"])
def test_the_console_scripts_that_spawn_decoders_stay_light(module):
    """Each decode worker is spawned, so it imports the console script's module again as its
    parent's main module: what that import pulls in is paid once per worker (pyarrow, fsspec
    and the rest took an idle worker from 30 to 73 MB)."""
    code = (
        f"import sys, {module};"
        "print(sorted({'pyarrow', 'fsspec', 'torch', 'yaml', 'tqdm', 'av'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
