"""clip-video-mix on encoded datasets: converter tables pointed at generated videos (some
shared by clip name, some planted copies re-encoded smaller, at a low bitrate and trimmed),
encoded with the test checkpoint. The copies are found at an eps the dry run's distribution
separates; the mixed dataset reads back with the project's reader, webdataset, Hugging Face
``datasets``, search and clip-video-pool; an interrupted mix resumes to the same bytes."""

import io
import json
import tarfile

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import MODEL
from PIL import Image

from clip_video_encode.cli import main as encode_main
from clip_video_encode.mix.cli import main as mix_main
from clip_video_encode.read import iter_samples
from converters.cli import main as convert_main

IDS = ["Aa0_aaaaaaa", "Bb1-bbbbbbb", "Cc2_ccccccc", "Dd3-ddddddd", "Ee4_eeeeeee", "Ff5-fffffff",
       "Gg6_ggggggg", "Hh7-hhhhhhh", "Ii8_iiiiiii", "Jj9-jjjjjjj", "Kk0_kkkkkkk"]  # fmt: skip


def world(seed: int) -> np.ndarray:
    """A 384 x 384 picture of its own kind (colour blocks, one hue, stripes, grey noise) and
    scale: distinct videos stay apart even for a model with random weights."""
    rng = np.random.default_rng(seed)
    kind, n = seed % 4, [6, 12, 24, 48][(seed // 4) % 4]
    if kind == 0:
        blocks = rng.integers(0, 255, (n, n, 3), dtype=np.uint8)
    elif kind == 1:
        blocks = (rng.random((n, n, 1)) * rng.integers(0, 255, 3)).astype(np.uint8)
    elif kind == 2:
        blocks = np.repeat(rng.integers(0, 255, (1, n, 3), dtype=np.uint8), n, axis=0)
    else:
        blocks = np.repeat(rng.integers(0, 255, (n, n, 1), dtype=np.uint8), 3, axis=2)
    return np.asarray(Image.fromarray(blocks).resize((384, 384), Image.NEAREST))


def scene(path, seed: int, size: int = 128, crf: int = 12, skip: int = 0, n_frames: int = 24):
    """A 3 s pan over ``world(seed)``; a copy is the same pan at another size and bitrate,
    its first ``skip`` frames trimmed."""
    import av

    big = world(seed)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf)}
        for i in range(skip, n_frames):
            crop = Image.fromarray(big[4 * i : 4 * i + 256, 4 * i : 4 * i + 256])
            image = np.asarray(crop.resize((size, size), Image.BILINEAR))
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def clip(i: int) -> str:
    return f"{IDS[i]}_000000_000003"


def encode(table, dest, checkpoint, save):
    return encode_main([str(table), "--dest", str(dest), "--model", MODEL, "--pretrained",
                        checkpoint, "--fps", "2", "--quiet", "--workers", "1",
                        "--samples-per-shard", "3", "--save-columns", save])  # fmt: skip


@pytest.fixture(scope="module")
def datasets_(tmp_path_factory, checkpoint):
    """``k600`` (Kinetics, clips 0-5), ``vatex`` (clips 0, 1 of k600: same files; 6, 7 its
    own; 8, 9 copies of k600's 2 and 3), ``k400`` (the evaluation set: clip 4 of k600, and
    10, a copy of k600's 5)."""
    root = tmp_path_factory.mktemp("mix_datasets")
    videos = root / "videos"
    videos.mkdir()
    for i in range(8):
        scene(videos / f"{clip(i)}.mp4", seed=i)
    for i, original in ((8, 2), (9, 3), (10, 5)):
        scene(videos / f"{clip(i)}.mp4", seed=original, size=96, crf=38, skip=3)

    def kinetics(name, members, split):
        path = root / f"{name}_{split}.csv"
        path.write_text("label,youtube_id,time_start,time_end,split\n" + "".join(
            f"label{i},{IDS[i]},0,3,{split}\n" for i in members))  # fmt: skip
        return path

    annotations = {
        "k600": ("kinetics", kinetics("k600", range(6), "validate")),
        "k400": ("kinetics", kinetics("k400", [4, 10], "validate")),
    }
    vatex = root / "vatex_validation_v1.0.json"
    vatex.write_text(json.dumps([{"videoID": clip(i), "enCap": [f"caption {i}", "other"],
                                  "chCap": []} for i in (0, 1, 6, 7, 8, 9)]))  # fmt: skip
    annotations["vatex"] = ("vatex", vatex)
    saves = {"k600": "label,youtube_id", "k400": "label,youtube_id", "vatex": "captions"}
    out = {}
    for name, (kind, path) in annotations.items():
        table = root / f"{name}.parquet"
        assert convert_main([kind, str(path), "--out", str(table), "--video-root",
                             str(videos)]) == 0  # fmt: skip
        assert encode(table, root / name, checkpoint, saves[name]) == 0
        out[name] = str(root / name)
    return out


def samples(dataset):
    return {k: (e, m) for k, e, m in iter_samples(dataset)}


def run_mix(data, dest, *extra):
    return mix_main([data["k600"], data["vatex"], "--exclude", data["k400"], "--dest",
                     str(dest), "--by", "source,content", "--quiet", *extra])  # fmt: skip


def test_dry_run_distribution_separates_the_planted_copies(datasets_, tmp_path):
    assert run_mix(datasets_, tmp_path / "dry", "--dry-run", "--clusters", "1") == 0
    folder = tmp_path / "dry" / "_dry_run"
    report = json.loads((folder / "mix_report.json").read_text())
    nearest = report["similarity"]["nearest"]
    # Two rows (the copies of k600's 2 and 3) have an earlier row within 0.005; no other row
    # comes within 0.03: any eps in between separates them.
    assert nearest["at_eps"]["0.005"] == nearest["at_eps"]["0.01"] == 2
    assert nearest["at_eps"]["0.02"] == nearest["at_eps"]["0.03"] == 2
    assert report["similarity"]["nearest_evaluation"]["at_eps"]["0.01"] == 1
    edges = np.asarray(report["similarity"]["histogram_edges"])
    hist = np.asarray(nearest["histogram"])
    assert hist[(edges[:-1] >= 0.97) & (edges[:-1] < 0.99)].sum() == 0
    assert (folder / "mix_similarity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "dry" / "run.json").exists()


@pytest.fixture(scope="module")
def mixed(datasets_, tmp_path_factory):
    dest = tmp_path_factory.mktemp("mixed") / "mix"
    assert run_mix(datasets_, dest, "--eps", "0.01", "--samples-per-shard", "4") == 0
    return str(dest)


def test_each_row_removed_for_its_reason(datasets_, mixed):
    report = json.loads(open(f"{mixed}/mix_report.json").read())
    k600, vatex = report["inputs"]
    assert k600["removed"] == {"excluded_source": 1, "excluded_content": 1, "same_source": 0,
                               "near_duplicate": 0} and k600["kept"] == 4  # fmt: skip
    assert vatex["removed"] == {"excluded_source": 0, "excluded_content": 0, "same_source": 2,
                                "near_duplicate": 2} and vatex["kept"] == 2  # fmt: skip
    pairs = {(p["id_a"], p["reason"]): p for p in pq.read_table(
        f"{mixed}/mix_pairs.parquet").to_pylist()}  # fmt: skip
    assert set(pairs) == {(clip(4), "excluded_source"), (clip(5), "excluded_content"),
                          (clip(0), "same_source"), (clip(1), "same_source"),
                          (clip(8), "near_duplicate"), (clip(9), "near_duplicate")}  # fmt: skip
    assert pairs[(clip(5), "excluded_content")]["id_b"] == clip(10)
    assert pairs[(clip(8), "near_duplicate")]["id_b"] == clip(2)
    assert pairs[(clip(9), "near_duplicate")]["dataset_b"] == datasets_["k600"]
    assert pairs[(clip(9), "near_duplicate")]["cosine"] > 0.99
    assert pairs[(clip(0), "same_source")]["source"] == f"youtube:{IDS[0]}"


def test_the_mix_reads_back_everywhere(datasets_, mixed, tmp_path):
    got = samples(mixed)
    inputs = {name: samples(datasets_[name]) for name in ("k600", "vatex")}
    assert len(got) == 6 and list(got) == sorted(got)
    expected_ids = [clip(i) for i in (0, 1, 2, 3, 6, 7)]
    assert [m["id"] for _, m in got.values()] == expected_ids
    for key, (embeddings, meta) in got.items():
        name = "k600" if meta["source_dataset"] == datasets_["k600"] else "vatex"
        source_embeddings, source_meta = inputs[name][meta["source_key"]]
        np.testing.assert_array_equal(embeddings, source_embeddings)
        assert meta["key"] == key and meta["source_id"] == f"youtube:{meta['id'][:11]}"
        assert meta["timestamps"] == source_meta["timestamps"]
    first, last = list(got.values())[0][1], list(got.values())[-1][1]
    assert first["label"] == "label0" and first["captions"] is None and last["label"] is None
    assert last["captions"] == ["caption 7", "other"]
    run = json.loads(open(f"{mixed}/run.json").read())
    assert run["model"] == MODEL and run["mix"]["plan_sha256"]
    assert [i["identity"] for i in run["mix"]["inputs"]] and run["mix"]["excludes"][0]["name"]
    # webdataset
    import webdataset as wds

    from clip_video_encode.read import shard_urls

    keys = [s["__key__"] for s in wds.WebDataset(shard_urls(mixed), shardshuffle=False)]
    assert keys == list(got)
    # Hugging Face datasets, from the card alone
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset(mixed)
    assert list(ds) == ["val"] and ds["val"].num_rows == 6
    assert [r["json"]["source_key"] for r in ds["val"]] == [m["source_key"] for _, m in
                                                            got.values()]  # fmt: skip
    # clip-video-pool (search: the next test)
    from clip_video_encode.video_models.cli import pool_main

    assert pool_main([mixed, "--out", str(tmp_path / "pooled.parquet"), "--quiet"]) == 0
    assert pq.read_table(tmp_path / "pooled.parquet").num_rows == 6


def test_search_finds_a_mixed_video(datasets_, mixed, tmp_path, capsys):
    from clip_video_encode.search.cli import main as search_main
    from video2numpy import FrameOptions, Sampling, read_videos

    _, meta = [v for v in samples(mixed).values() if v[1]["id"] == clip(6)][0]
    frames, _ = next(read_videos([meta["location"]], FrameOptions(Sampling(fps=2)), workers=0))
    image = tmp_path / "query.png"
    Image.fromarray(frames[1]).save(image)
    capsys.readouterr()
    assert search_main([mixed, str(image), "--json", "--top", "1"]) == 0
    hit = json.loads(capsys.readouterr().out.splitlines()[0])
    assert hit["id"] == clip(6) and hit["score"] > 0.99


def test_an_interrupted_mix_resumes_to_the_same_bytes(datasets_, mixed, tmp_path, monkeypatch,
                                                      capsys):  # fmt: skip
    from clip_video_encode.commit import writer

    dest = tmp_path / "mix"
    real_close = writer.ShardWriter.close
    calls = []

    def close_then_die(self):
        calls.append(self.name)
        if len(calls) == 2:  # the second shard: its tar is written, its commit never comes
            raise KeyboardInterrupt
        return real_close(self)

    monkeypatch.setattr(writer.ShardWriter, "close", close_then_die)
    assert run_mix(datasets_, dest, "--eps", "0.01", "--samples-per-shard", "4") == 130
    assert (dest / "00000_stats.json").exists() and not (dest / "00001_stats.json").exists()
    monkeypatch.setattr(writer.ShardWriter, "close", real_close)
    assert run_mix(datasets_, dest, "--eps", "0.01", "--samples-per-shard", "4") == 0
    for name in ("00000.tar", "00001.tar", "00000.parquet", "00001.parquet", "splits.csv",
                 "_mix/plan.parquet", "mix_pairs.parquet"):  # fmt: skip
        assert (dest / name).read_bytes() == open(f"{mixed}/{name}", "rb").read(), name
    leftovers = [p.name for p in dest.iterdir() if p.name.endswith(".partial")]
    assert leftovers == []
    # Another eps is another mix: refused, not resumed.
    assert run_mix(datasets_, dest, "--eps", "0.02", "--samples-per-shard", "4") == 2
    assert "holds a mix of other inputs or options" in capsys.readouterr().err


def test_datasets_of_two_models_are_refused(datasets_, tmp_path, capsys):
    from clip_video_encode.video_models.synthetic import write_dataset

    other = tmp_path / "other_model"
    rows = ((np.ones((2, 512), np.float16), {"caption": "x"}) for _ in range(2))
    write_dataset(str(other), rows, 2, 512, MODEL, "another-checkpoint.pt")
    assert mix_main([datasets_["k600"], str(other), "--dest", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "another-checkpoint.pt" in err and "needs one model and weights" in err
    assert mix_main([datasets_["k600"], str(other), "--dest", str(tmp_path / "t"),
                     "--table-only", "--quiet"]) == 0  # fmt: skip
    assert mix_main([datasets_["k600"], "--exclude", str(other), "--by", "content",
                     "--dest", str(tmp_path / "c")]) == 2  # fmt: skip
    assert "--by content" in capsys.readouterr().err


def test_the_table_only_path_from_datasets_encodes_again(datasets_, tmp_path, checkpoint):
    dest = tmp_path / "table"
    assert mix_main([datasets_["k600"], datasets_["vatex"], "--exclude", datasets_["k400"],
                     "--dest", str(dest), "--table-only", "--quiet"]) == 0  # fmt: skip
    table = pq.read_table(dest / "mix.parquet")
    assert table.column_names[:6] == ["id", "location", "caption", "start", "end", "split"]
    assert "status" not in table.column_names and "source_key" in table.column_names
    assert table.num_rows == 5 + 4  # by source only: the planted copies stay
    again = tmp_path / "again"
    assert encode(dest / "mix.parquet", again, checkpoint, "label,captions") == 0
    assert len(samples(str(again))) == 9


def test_empty_inputs(datasets_, tmp_path, capsys):
    empty_table = tmp_path / "empty.csv"
    empty_table.write_text("id,location\n")
    empty_dataset = tmp_path / "empty_dataset"
    empty_dataset.mkdir()
    (empty_dataset / "run.json").write_text(open(f"{datasets_['k600']}/run.json").read())
    dest = tmp_path / "out"
    assert mix_main([datasets_["k600"], str(empty_dataset), "--dest", str(dest), "--quiet"]) == 0
    assert len(samples(str(dest))) == 6
    assert mix_main([str(empty_dataset), "--dest", str(tmp_path / "nothing"), "--quiet"]) == 0
    assert list(iter_samples(str(tmp_path / "nothing"))) == []
    assert mix_main([str(empty_table), "--dest", str(tmp_path / "t"), "--table-only",
                     "--exclude", str(empty_table.with_name("e.csv")), "--quiet"]) == 2  # fmt: skip
    (tmp_path / "e.csv").write_text("location\nx\n")
    assert mix_main([str(empty_table), "--dest", str(tmp_path / "t"), "--table-only",
                     "--exclude", str(tmp_path / "e.csv"), "--quiet"]) == 0  # fmt: skip
    assert pq.read_table(tmp_path / "t" / "mix.parquet").num_rows == 0


def shard_bytes(dest):
    with tarfile.open(f"{dest}/00000.tar") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}


def test_hostile_names(datasets_, tmp_path):
    """Inputs under names with spaces, unicode, commas and a leading dash; the mix's own keys
    and file names are ours."""
    import shutil

    odd = tmp_path / "-ｋ600, val 数据 ..."
    shutil.copytree(datasets_["k600"], odd)
    dest = tmp_path / "d é s t"
    assert mix_main(["--dest", str(dest), "--quiet", "--", str(odd)]) == 0
    members = shard_bytes(dest)
    meta = json.loads(members["000000000.json"])
    assert meta["source_dataset"] == str(odd)
    assert sorted(members)[:3] == ["000000000.json", "000000000.npy", "000000000.txt"]
    assert io.BytesIO(members["000000000.npy"]).getbuffer().nbytes > 0


@pytest.mark.parametrize("keep, removed", [("first", {2, 3}), ("largest", {8, 9})])
def test_keep_largest_keeps_the_original_of_a_smaller_copy(datasets_, tmp_path, keep, removed):
    """vatex first: by input order its 96-pixel copies stay; by pixels k600's originals do."""
    dest = tmp_path / keep
    assert mix_main([datasets_["vatex"], datasets_["k600"], "--dest", str(dest), "--by",
                     "source,content", "--eps", "0.01", "--keep", keep, "--dry-run",
                     "--quiet"]) == 0  # fmt: skip
    pairs = pq.read_table(dest / "_dry_run" / "mix_pairs.parquet").to_pylist()
    near = {p["id_a"] for p in pairs if p["reason"] == "near_duplicate"}
    assert near == {clip(i) for i in removed}


def test_by_content_alone_leaves_sources_alone(datasets_, tmp_path):
    """--by content only: no row goes by its source; vatex's clips 0 and 1 and k400's 4 are
    the very files of k600's (identical embeddings), so they are found by content instead."""
    dest = tmp_path / "content"
    assert mix_main([datasets_["k600"], datasets_["vatex"], "--exclude", datasets_["k400"],
                     "--dest", str(dest), "--by", "content", "--eps", "0.01", "--dry-run",
                     "--quiet"]) == 0  # fmt: skip
    pairs = pq.read_table(dest / "_dry_run" / "mix_pairs.parquet").to_pylist()
    assert {(p["id_a"], p["reason"]) for p in pairs} == {
        (clip(4), "excluded_content"), (clip(5), "excluded_content"),
        (clip(0), "near_duplicate"), (clip(1), "near_duplicate"),
        (clip(8), "near_duplicate"), (clip(9), "near_duplicate")}  # fmt: skip
