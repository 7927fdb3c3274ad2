"""clip-video-caption: the captioner loaded by path and by the default name, the frames of
each clip, windows cut as the hierarchy's clip level, the table clip-video-encode reads,
exact resume, failed rows kept."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("transformers")

from clip_video_encode.caption.frames import ClipPlan, sample_clips  # noqa: E402
from clip_video_encode.caption.model import (  # noqa: E402
    DEFAULT_MODEL,
    Captioner,
    CaptionerOptions,
    CaptionModelError,
)
from clip_video_encode.caption.run import CaptionJob, caption_dataset  # noqa: E402
from clip_video_encode.caption.synthetic import card_cache, save_random_captioner  # noqa: E402
from clip_video_encode.caption.table import RunMismatch, parts_path  # noqa: E402
from clip_video_encode.hierarchy.build import video_span  # noqa: E402
from clip_video_encode.hierarchy.windows import clip_edges  # noqa: E402
from video2numpy.sampling import Sampling  # noqa: E402
from video2numpy.synth import frame_index, write_video  # noqa: E402
from video2numpy.video import FrameOptions, Task, sample_video  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Beam search on a tiny model is many small ops: threads only contend on a shared CPU."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return save_random_captioner(str(tmp_path_factory.mktemp("tiny-captioner")))


@pytest.fixture(scope="module")
def captioner(tiny) -> Captioner:
    return Captioner(CaptionerOptions(model=tiny))


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, str]:
    """Index-coded videos: frame i's pixels say i (video2numpy.synth)."""
    root = tmp_path_factory.mktemp("caption-videos")
    paths = {}
    for name, frames in (("three.mp4", 90), ("ten.mp4", 300)):
        paths[name] = str(root / name)
        write_video(paths[name], n_frames=frames, fps=30, width=96, height=72)
    paths["corrupt.mp4"] = str(root / "corrupt.mp4")
    with open(paths["corrupt.mp4"], "w") as f:
        f.write("not a video\n" * 50)
    paths["missing.mp4"] = str(root / "missing.mp4")
    return paths


def _record(frames):
    """A to_pixels that keeps what it was given: each frame's index."""
    return np.asarray([frame_index(f) for f in frames])


def _encode_stamps(path, start=None, end=None, num_frames=8):
    """The timestamps clip-video-encode's sampler gives the same row (video2numpy)."""
    options = FrameOptions(sampling=Sampling(num_frames=num_frames))
    chunks = list(sample_video(Task(0, path, start, end), options, "/tmp"))
    return chunks[-1].record["timestamps"]


def test_a_clip_is_the_encoders_num_frames_sample_of_its_window(clips, tmp_path):
    plan = ClipPlan(per="row", num_frames=8)
    whole = list(sample_clips(clips["ten.mp4"], None, None, plan, str(tmp_path), _record))
    windowed = list(sample_clips(clips["ten.mp4"], 2.0, 6.0, plan, str(tmp_path), _record))
    for (clip,), (start, end) in ((whole, (None, None)), (windowed, (2.0, 6.0))):
        assert clip.status == "success"
        assert clip.timestamps == _encode_stamps(clips["ten.mp4"], start, end)
        # The frames given to the model are the frames at those times (30 fps).
        assert clip.pixels.tolist() == [round(t * 30) for t in clip.timestamps]
    # The card's rule over a window: np.linspace(0, n, 8, endpoint=False) of its 120 frames.
    expected = 60 + np.linspace(0, 120, 8, endpoint=False).astype(int)
    assert windowed[0].pixels.tolist() == expected.tolist()
    assert (windowed[0].start, windowed[0].end, windowed[0].duration) == (2.0, 6.0, 10.0)


def test_windows_are_the_hierarchys_clip_level(clips, tmp_path):
    plan = ClipPlan(per="window", num_frames=8, window_seconds=4.0)
    for start, end in ((None, None), (1.0, 9.5)):
        got = list(sample_clips(clips["ten.mp4"], start, end, plan, str(tmp_path), _record))
        lo, hi = video_span({"start": start, "end": end, "duration": 10.0}, np.zeros(0))
        edges = clip_edges(lo, hi, 4.0)
        assert [(c.start, c.end) for c in got] == list(zip(edges[:-1], edges[1:], strict=True))
        assert [c.window for c in got] == list(range(len(edges) - 1))
        for clip in got:
            assert clip.timestamps == _encode_stamps(clips["ten.mp4"], clip.start, clip.end)
            assert clip.pixels.tolist() == [round(t * 30) for t in clip.timestamps]


def test_a_bad_video_is_one_failed_clip_with_its_reason(clips, tmp_path):
    plan = ClipPlan(per="window", num_frames=8)
    (corrupt,) = sample_clips(clips["corrupt.mp4"], None, None, plan, str(tmp_path), _record)
    (missing,) = sample_clips(clips["missing.mp4"], None, None, plan, str(tmp_path), _record)
    (backwards,) = sample_clips(clips["ten.mp4"], 5.0, 2.0, plan, str(tmp_path), _record)
    (past,) = sample_clips(clips["ten.mp4"], 20.0, 30.0, ClipPlan(), str(tmp_path), _record)
    assert (corrupt.status, missing.status) == ("failed_to_decode", "failed_to_fetch")
    assert "no such file" in missing.error_message
    assert backwards.status == "failed_to_decode" and "bad request" in backwards.error_message
    assert past.status == "no_frames" and "past the end" in past.error_message
    assert all(c.pixels is None for c in (corrupt, missing, backwards, past))


def test_the_captioner_loads_by_path_and_captions_the_same_every_time(captioner, clips, tiny):
    import time

    described = captioner.describe()
    assert described["model"] == tiny and described["revision"] is None
    assert (described["num_frames"], described["num_beams"]) == (8, 8)
    assert (described["min_length"], described["max_length"]) == (10, 20)
    assert len(described["weights_sha256"]) == 64 and described["precision"] == "fp32"
    batch = [
        captioner.pixels(list(f))
        for f in (np.full((4, 8, 72, 96, 3), v, np.uint8) for v in (0, 60, 120, 250))
    ]
    began = time.perf_counter()
    first = captioner.generate(np.stack(batch))
    per_clip = (time.perf_counter() - began) / len(batch)
    assert first == captioner.generate(np.stack(batch))
    assert [captioner.generate(b[None])[0] for b in batch] == first  # alone as in a batch
    assert len(set(first)) > 1  # other frames, other captions
    assert all(5 <= len(c.split()) <= 20 for c in first)
    assert per_clip < 1.0


def test_the_default_name_loads_as_the_card_says_from_the_hub_cache(tiny, tmp_path):
    """HF_HUB_OFFLINE is set (conftest): the default model, its card's processor and
    tokenizer are found by name in a cache that holds them, and the revision is recorded."""
    commit = card_cache(str(tmp_path), tiny, "ab" * 20)
    loaded = Captioner(CaptionerOptions(cache_dir=str(tmp_path)))
    described = loaded.describe()
    assert described["model"] == DEFAULT_MODEL and described["revision"] == commit
    assert (described["processor"], described["tokenizer"]) == ("MCG-NJU/videomae-base", "gpt2")
    by_path = Captioner(CaptionerOptions(model=tiny)).describe()
    assert described["weights_sha256"] == by_path["weights_sha256"]


def test_no_weights_no_captions(tiny, tmp_path):
    from safetensors.torch import load_file, save_file

    with pytest.raises(CaptionModelError, match="Nothing falls back to random weights"):
        Captioner(CaptionerOptions(model="no-such-user/no-such-captioner"))
    broken = tmp_path / "broken"
    broken.mkdir()
    for leaf in os.listdir(tiny):
        (broken / leaf).write_bytes(open(os.path.join(tiny, leaf), "rb").read())
    weights = load_file(str(broken / "model.safetensors"))
    dropped = sorted(k for k in weights if "encoder" in k)[0]
    del weights[dropped]
    save_file(weights, str(broken / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CaptionModelError, match="would be random"):
        Captioner(CaptionerOptions(model=str(broken)))


def _table(path, rows: dict) -> str:
    if str(path).endswith(".csv"):
        import pyarrow.csv as pc

        pc.write_csv(pa.table(rows), path)
    else:
        pq.write_table(pa.table(rows), path)
    return str(path)


def _job(src, out, tiny, **kwargs) -> CaptionJob:
    plan = kwargs.pop("plan", ClipPlan())
    return CaptionJob(src, str(out), CaptionerOptions(model=tiny), plan, **kwargs)


def test_a_table_of_rows_becomes_a_table_clip_video_encode_reads(
    captioner, clips, tiny, tmp_path, encoder
):
    """Captions fill the rows without one, failed rows keep their status, and the table,
    given to clip-video-encode with --num-frames 8, embeds the very frames captioned."""
    from clip_video_encode.execute.local import encode_dataset
    from clip_video_encode.plan.job import EncodeJob
    from clip_video_encode.read import iter_samples

    src = _table(tmp_path / "in.parquet", {
        "location": [clips["three.mp4"], clips["ten.mp4"], clips["corrupt.mp4"],
                     clips["missing.mp4"], clips["ten.mp4"]],
        "caption": ["a given caption", None, None, None, "  "],
        "start": [None, 2.0, None, None, None], "end": [None, 6.0, None, None, None],
        "id": ["v1", "v2", "v3", "v4", "v5"],
        "status": ["kept", "as", "input", "column", "!"],
    })  # fmt: skip
    out = tmp_path / "captions.parquet"
    summary = caption_dataset(_job(src, out, tiny, samples_per_shard=2), captioner, False)
    assert (summary["clips"], summary["successes"], summary["shards_written"]) == (5, 3, 3)
    rows = pq.read_table(out).to_pylist()
    assert [r["key"] for r in rows] == ["000000", "000001", "000010", "000011", "000020"]
    assert [r["status"] for r in rows] == ["success", "success", "failed_to_decode",
                                           "failed_to_fetch", "success"]  # fmt: skip
    assert [r["input_status"] for r in rows] == ["kept", "as", "input", "column", "!"]
    assert rows[0]["caption"] == "a given caption" and rows[0]["caption_source"] == "input"
    for r in (rows[1], rows[4]):
        assert r["caption"] == r["generated_caption"] and r["caption_source"] == "generated"
    assert rows[2]["caption"] is None and rows[2]["error_message"]
    assert "no such file" in rows[3]["error_message"]
    assert (rows[1]["start"], rows[1]["end"]) == (2.0, 6.0)
    assert {r["model"] for r in rows} == {tiny} and {r["num_beams"] for r in rows} == {8}
    meta = json.loads(pq.read_schema(out).metadata[b"clip_video_caption"])
    assert meta["weights_sha256"] == captioner.weights_sha256

    dest = tmp_path / "encoded"
    job = EncodeJob(src=str(out), dest=str(dest), samples_per_shard=10,
                    frames=FrameOptions(sampling=Sampling(num_frames=8)))  # fmt: skip
    encode_dataset(job, encoder, progress=False)
    encoded = {m["id"]: m for _, _, m in iter_samples(str(dest))}
    for row in rows:
        if row["status"] == "success":
            assert encoded[row["id"]]["caption"] == row["caption"]
            assert encoded[row["id"]]["timestamps"] == row["frame_timestamps"]


def test_per_window_and_per_video(captioner, clips, tiny, tmp_path):
    src = _table(tmp_path / "in.csv", {
        "location": [clips["ten.mp4"], clips["three.mp4"], clips["ten.mp4"]],
        "caption": ["whole video text", None, None],
    })  # fmt: skip
    out = tmp_path / "windows.parquet"
    caption_dataset(_job(src, out, tiny, plan=ClipPlan(per="window", window_seconds=4.0)),
                    captioner, False)  # fmt: skip
    rows = pq.read_table(out).to_pylist()
    assert [r["key"] for r in rows] == [f"00000000{k}" for k in ("0_0000", "0_0001", "0_0002",
                                        "1_0000", "2_0000", "2_0001", "2_0002")]  # fmt: skip
    assert [(r["start"], r["end"]) for r in rows[:3]] == [(0.0, 4.0), (4.0, 8.0), (8.0, 10.0)]
    # A video's caption is not a window's: fill takes the generated one, the input's is kept.
    assert rows[0]["caption_source"] == "generated" and rows[0]["input_caption"] == (
        "whole video text"
    )
    out = tmp_path / "videos.parquet"
    caption_dataset(_job(src, out, tiny, plan=ClipPlan(per="video")), captioner, False)
    rows = pq.read_table(out).to_pylist()
    assert [r["location"] for r in rows] == [clips["ten.mp4"], clips["three.mp4"]]
    assert all(r["start"] is None and len(r["frame_timestamps"]) == 8 for r in rows)


class _Dies:
    """The captioner, until its ``n``-th batch: then the run dies as a killed one would."""

    def __init__(self, captioner, n: int) -> None:
        self.inner, self.n, self.calls = captioner, n, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def generate(self, pixels):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        return self.inner.generate(pixels)


def test_a_run_stopped_midway_resumes_to_the_same_bytes(captioner, clips, tiny, tmp_path):
    locations = [clips["ten.mp4"], clips["three.mp4"], clips["corrupt.mp4"]] * 3
    src = _table(tmp_path / "in.jsonl.parquet", {"location": locations})
    whole = tmp_path / "whole.parquet"
    caption_dataset(_job(src, whole, tiny, samples_per_shard=2, batch_size=1), captioner, False)
    out = tmp_path / "resumed.parquet"
    job = _job(src, out, tiny, samples_per_shard=2, batch_size=1)
    with pytest.raises(KeyboardInterrupt):
        caption_dataset(job, _Dies(captioner, 5), False)
    parts = parts_path(str(out))
    assert not out.exists()
    committed = sorted(n for n in os.listdir(parts) if n.endswith("_stats.json"))
    assert committed == ["00000_stats.json", "00001_stats.json", "00002_stats.json"]
    before = os.stat(os.path.join(parts, "00000.parquet")).st_mtime_ns
    counting = _Dies(captioner, 0)
    summary = caption_dataset(job, counting, False)
    assert summary["shards_skipped"] == 3 and summary["shards_written"] == 2
    assert counting.calls == 2  # the two shards left, one clip each (batches of 1)
    assert os.stat(os.path.join(parts, "00000.parquet")).st_mtime_ns == before
    assert out.read_bytes() == whole.read_bytes()


def test_a_rerun_with_other_settings_or_over_a_foreign_file_is_refused(
    captioner, clips, tiny, tmp_path
):
    src = _table(tmp_path / "in.parquet", {"location": [clips["three.mp4"]]})
    out = tmp_path / "c.parquet"
    caption_dataset(_job(src, out, tiny), captioner, False)
    other = Captioner(CaptionerOptions(model=tiny, num_beams=2))
    with pytest.raises(RunMismatch, match="num_beams: 8 there, 2 now"):
        caption_dataset(_job(src, out, tiny), other, False)
    foreign = tmp_path / "mine.parquet"
    foreign.write_bytes(b"a user's own file")
    with pytest.raises(RunMismatch, match="not this tool's output"):
        caption_dataset(_job(src, foreign, tiny), captioner, False)
    assert foreign.read_bytes() == b"a user's own file"
    with pytest.raises(ValueError, match="NAME.parquet"):
        caption_dataset(_job(src, tmp_path / "c.csv", tiny), captioner, False)
    with pytest.raises(ValueError, match="is the input"):  # recaptioning a table in place
        caption_dataset(_job(str(out), out, tiny), captioner, False)
    (tmp_path / "d.parquet.parts").write_text("a user's file")
    with pytest.raises(RunMismatch, match="not a parts folder"):
        caption_dataset(_job(src, tmp_path / "d.parquet", tiny), captioner, False)
    with pytest.raises(ValueError, match="--batch-size must be >= 1"):
        _job(src, out, tiny, batch_size=0)
    with pytest.raises(ValueError, match="name is too long"):  # NAME.parquet.parts.partial
        caption_dataset(_job(src, tmp_path / f"{'x' * 235}.parquet", tiny), captioner, False)


def test_tars_keep_their_keys_and_a_sample_without_video_keeps_its_row(
    captioner, clips, tiny, tmp_path
):
    import webdataset as wds

    tar = tmp_path / "shard-0.tar"
    with wds.TarWriter(str(tar)) as sink:
        sink.write({"__key__": "clip_a", "mp4": open(clips["three.mp4"], "rb").read(),
                    "txt": "given", "json": {"source": "x"}})  # fmt: skip
        sink.write({"__key__": "clip_b", "txt": "no video here"})
    out = tmp_path / "tar.parquet"
    caption_dataset(_job(str(tar), out, tiny), captioner, False)
    rows = pq.read_table(out).to_pylist()
    assert [(r["key"], r["status"]) for r in rows] == [
        ("clip_a", "success"), ("clip_b", "failed_to_fetch")
    ]  # fmt: skip
    assert rows[0]["caption"] == "given" and rows[0]["generated_caption"]
    assert rows[0]["source"] == "x" and "no video member" in rows[1]["error_message"]


def test_an_encoded_dataset_is_captioned_with_its_own_keys(captioner, clips, tiny, tmp_path,
                                                           encoder):  # fmt: skip
    from clip_video_encode.execute.local import encode_dataset
    from clip_video_encode.plan.job import EncodeJob

    src = _table(tmp_path / "in.parquet", {
        "location": [clips["ten.mp4"], clips["three.mp4"]], "start": [4.0, None],
        "end": [8.0, None], "id": ["ten", "three"], "topic": ["x", "y"],
        "caption": ["a dog runs on the street", "a man is playing the guitar"],
    })  # fmt: skip
    dest = tmp_path / "dataset"
    encode_dataset(EncodeJob(src=src, dest=str(dest), samples_per_shard=1,
                             frames=FrameOptions(sampling=Sampling(fps=1))), encoder,
                   progress=False)  # fmt: skip
    out = tmp_path / "of-dataset.parquet"
    caption_dataset(_job(str(dest), out, tiny), captioner, False)
    rows = pq.read_table(out).to_pylist()
    assert [r["key"] for r in rows] == ["000000", "000010"]
    assert [(r["id"], r["start"], r["end"]) for r in rows] == [
        ("ten", 4.0, 8.0), ("three", None, None)
    ]  # fmt: skip
    assert rows[0]["frame_timestamps"][0] == 4.0 and rows[0]["frame_timestamps"][-1] < 8.0
    assert rows[1]["caption"] == "a man is playing the guitar"  # the dataset's, kept (fill)
    # The dataset's own captions are references for eval, matched by the dataset's ids.
    from clip_video_encode.caption.evaluate import EvalOptions, evaluate

    options = EvalOptions(tokenizer="python", meteor=False, chance=False)
    scored = evaluate(str(out), str(dest), options)
    assert scored["ids"] == ["ten", "three"]
    assert scored["references"]["three"] == ["a man is playing the guitar"]
    assert scored["predictions"]["ten"] == rows[0]["generated_caption"]


def test_hostile_rows_cost_their_row_only(captioner, clips, tiny, tmp_path):
    odd = tmp_path / "vidéo  ünïcode 'quoted' \"name\" 😀.mp4"
    odd.write_bytes(open(clips["three.mp4"], "rb").read())
    src = _table(tmp_path / "in.parquet", {
        "location": [str(odd), "", str(tmp_path), "no-such-scheme://x/y.mp4", clips["ten.mp4"]],
        "start": [0.5, None, None, None, float("nan")],
        "caption": ["ünïcode 😀 caption\r\nwith lines", None, None, None, None],
    })  # fmt: skip
    out = tmp_path / "hostile.parquet"
    caption_dataset(_job(src, out, tiny), captioner, False)
    rows = pq.read_table(out).to_pylist()
    assert rows[0]["status"] == "success" and rows[0]["location"] == str(odd)
    assert rows[0]["caption"] == "ünïcode 😀 caption\r\nwith lines"
    assert rows[0]["frame_timestamps"][0] == 0.5
    assert [r["status"] for r in rows[1:4]] == ["failed_to_fetch"] * 3
    assert all(r["error_message"] for r in rows[1:4])
    assert rows[4]["status"] == "success" and rows[4]["start"] is None  # NaN: no bound


def test_the_cli_exit_codes(clips, tiny, tmp_path, capsys):
    from clip_video_encode.caption.cli import main

    src = _table(tmp_path / "in.parquet", {"location": [clips["three.mp4"],
                                                        clips["corrupt.mp4"]]})  # fmt: skip
    common = ["--model", tiny, "--quiet", "--num-beams", "2"]
    assert main([src, "--out", str(tmp_path / "a.parquet"), *common]) == 1
    assert "1 failed (failed_to_decode: 1)" in capsys.readouterr().err
    assert main([src, "--out", str(tmp_path / "a.parquet"), *common]) == 1  # still failed
    assert "1 already done" in capsys.readouterr().err
    assert main([src, "--out", str(tmp_path / "a.parquet"), *common, "--allow-failures"]) == 0
    assert main([src, "--out", str(tmp_path / "b.parquet"), "--model", str(tmp_path)]) == 2
    assert "no usable model" in capsys.readouterr().err


def test_without_the_caption_extra_the_core_imports_and_the_tools_say_what_to_install(
    clips, tmp_path
):
    """transformers, tokenizers and pycocoevalcap are an extra: blocked here, the package
    still imports, --help works, and both commands name the extra."""
    import subprocess
    import sys

    src = _table(tmp_path / "in.parquet", {"location": [clips["three.mp4"]]})
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps({"a": ["x"]}))
    code = (
        "import sys\n"
        "for m in ('transformers', 'tokenizers', 'pycocoevalcap'): sys.modules[m] = None\n"
        "import clip_video_encode.caption.run, clip_video_encode.caption.evaluate\n"
        "from clip_video_encode.caption.cli import main\n"
        f"print(main([{src!r}, '--out', {str(tmp_path / 'c.parquet')!r}, '--quiet']))\n"
        f"print(main(['eval', {str(refs)!r}, '--refs', {str(refs)!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split() == ["2", "2"], done.stderr
    assert done.stderr.count("pip install 'clip-video-datasets[caption]'") == 2
    assert "transformers and tokenizers not installed" in done.stderr
    assert "pycocoevalcap not installed" in done.stderr


def test_window_captions_line_up_with_the_hierarchys_clip_features(
    captioner, clips, tiny, tmp_path, encoder
):
    """One caption per clip feature of clip-video-hierarchy, same key, same bounds."""
    from clip_video_encode.execute.local import encode_dataset
    from clip_video_encode.hierarchy.build import HierarchyOptions, build
    from clip_video_encode.plan.job import EncodeJob

    src = _table(tmp_path / "in.parquet", {
        "location": [clips["ten.mp4"], clips["ten.mp4"], clips["three.mp4"]],
        "start": [None, 1.0, None], "end": [None, 9.5, None],
    })  # fmt: skip
    dest = tmp_path / "dataset"
    encode_dataset(EncodeJob(src=src, dest=str(dest), frames=FrameOptions(
        sampling=Sampling(fps=2))), encoder, progress=False)  # fmt: skip
    build(str(dest), str(tmp_path / "hierarchy"), HierarchyOptions(clip_seconds=4.0), False)
    with open(tmp_path / "hierarchy" / "annotations" / "clips.json") as f:
        features = [(c["vid"], c["start_sec"], c["end_sec"]) for c in json.load(f)]
    out = tmp_path / "windows.parquet"
    plan = ClipPlan(per="window", window_seconds=4.0)
    caption_dataset(_job(str(dest), out, tiny, plan=plan), captioner, False)
    rows = pq.read_table(out).to_pylist()
    ours = [(r["key"].rsplit("_", 1)[0], r["start"], r["end"]) for r in rows]
    assert ours == features and len(ours) == 3 + 3 + 1
    assert [r["window"] for r in rows] == [0, 1, 2, 0, 1, 2, 0]
    assert all(r["status"] == "success" for r in rows)


def test_a_run_wide_window_is_the_span_of_captions_hierarchy_and_search(
    captioner, clips, tiny, tmp_path, encoder
):
    """A dataset encoded with --start/--end for every row (run.json's sampling, no per-row
    window): its embeddings cover that window, so the caption windows, the hierarchy's clip
    windows and search's video spans cover it too, one to one."""
    from clip_video_encode.execute.local import encode_dataset
    from clip_video_encode.hierarchy.build import HierarchyOptions, build
    from clip_video_encode.plan.job import EncodeJob
    from clip_video_encode.search.index import SearchIndex, build_index
    from clip_video_encode.search.levels import spans

    src = _table(tmp_path / "in.parquet", {"location": [clips["ten.mp4"], clips["three.mp4"]]})
    dest = tmp_path / "dataset"
    encode_dataset(EncodeJob(src=src, dest=str(dest), frames=FrameOptions(
        sampling=Sampling(fps=2, start=2.0, end=6.0))), encoder, progress=False)  # fmt: skip
    build(str(dest), str(tmp_path / "hierarchy"), HierarchyOptions(clip_seconds=2.0), False)
    with open(tmp_path / "hierarchy" / "annotations" / "clips.json") as f:
        features = [(c["vid"], c["start_sec"], c["end_sec"]) for c in json.load(f)]
    # the run's window is each row's, as a row's own window is; it stops at a video's end,
    # as the sampled frames do (three.mp4 ends at 3 s)
    assert [(s, e) for _, s, e in features] == [(2.0, 4.0), (4.0, 6.0), (2.0, 3.0)]
    out = tmp_path / "windows.parquet"
    caption_dataset(_job(str(dest), out, tiny, plan=ClipPlan(per="window", window_seconds=2.0)),
                    captioner, False)  # fmt: skip
    rows = pq.read_table(out).to_pylist()
    assert [(r["key"].rsplit("_", 1)[0], r["start"], r["end"]) for r in rows] == features
    assert [r["status"] for r in rows] == ["success"] * 3
    per_row = tmp_path / "rows.parquet"
    caption_dataset(_job(str(dest), per_row, tiny), captioner, False)
    assert [(r["start"], r["end"]) for r in pq.read_table(per_row).to_pylist()] == [
        (2.0, 6.0), (2.0, 6.0)]  # fmt: skip
    lo, hi = spans(SearchIndex(build_index(str(dest))))
    assert lo.tolist() == [2.0, 2.0] and hi.tolist() == [6.0, 3.0]
