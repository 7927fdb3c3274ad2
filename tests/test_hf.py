"""Hugging Face ``datasets`` reads a destination whatever rows failed and wherever."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from conftest import MODEL

from clip_video_encode.cli import main as encode_main
from clip_video_encode.read import hf_features, iter_samples

datasets = pytest.importorskip("datasets")


def encode(src, dest, checkpoint, *extra):
    argv = [str(src), "--dest", str(dest), "--model", MODEL, "--pretrained", checkpoint,
            "--fps", "2", "--quiet", "--workers", "1", "--samples-per-shard", "10"]  # fmt: skip
    return encode_main([*argv, *extra])


def test_load_dataset_on_the_destination(videos, tmp_path, checkpoint):
    """Failed rows at position 7 of a 10-row shard and in a second shard; a copied column
    null in the whole first shard; one split per shard."""
    missing = str(tmp_path / "missing.mp4")
    locations = [videos["one_frame.mp4"]] * 6 + [missing] + [videos["cfr.mp4"]] * 3
    locations += [videos["one_frame.mp4"], missing, videos["vfr.mp4"]]
    n = len(locations)
    table = pa.table({
        "location": locations,
        "caption": [f"caption {i}" for i in range(n)],
        "score": [None] * 10 + [0.5, 1.5, 2.5],
        "tags": [["a", "b"]] * n,
        "when": pa.array([None] * n, pa.timestamp("s")),
        "split": ["train"] * 10 + ["validation"] * 3,
    })  # fmt: skip
    src = tmp_path / "videos.parquet"
    pq.write_table(table, src)
    dest = tmp_path / "out"
    assert encode(src, dest, checkpoint, "--save-columns", "score,tags,when") == 1
    ds = datasets.load_dataset(str(dest))  # no other argument
    assert sorted(ds) == ["train", "validation"]
    assert ds["train"].num_rows == 10 and ds["validation"].num_rows == 3
    rows = [*ds["train"], *ds["validation"]]
    statuses = [r["json"]["status"] for r in rows]
    assert statuses == ["success"] * 6 + ["failed_to_fetch"] + ["success"] * 4 + [
        "failed_to_fetch", "success"]  # fmt: skip
    assert "missing.mp4" in rows[6]["json"]["error_message"]
    assert [r["txt"] for r in rows] == [f"caption {i}" for i in range(n)]
    assert rows[9]["json"]["score"] is None and rows[12]["json"]["score"] == 2.5
    assert rows[0]["json"]["tags"] == ["a", "b"]
    ours = {k: e for k, e, _ in iter_samples(str(dest), include_failed=True)}
    for row in rows:  # the embeddings as the project's own reader sees them
        got = np.asarray(row["npy"], dtype=np.float16)
        if row["json"]["status"] == "success":
            np.testing.assert_array_equal(got, ours[row["__key__"]])
        else:
            assert got.size == 0
    # The webdataset builder form, with the card's features.
    features = hf_features(str(dest))
    wds_form = datasets.load_dataset("webdataset", data_files=f"{dest}/*.tar", features=features)
    assert [r["json"]["status"] for r in wds_form["train"]] == statuses


def test_load_dataset_from_tar_input(videos, tmp_path, checkpoint):
    """An input tar's json fields are known only as it is read: a field that first shows at
    the eighth sample, a failed sample at position 7, a field whose type differs."""
    src = tmp_path / "00000.tar"
    with wds.TarWriter(str(src)) as sink:
        for i in range(10):
            sample = {"__key__": f"{i:09d}", "txt": f"clip {i}",
                      "json": {"key": f"{i:09d}", "status": "success", "rank": i}}  # fmt: skip
            if i == 6:
                sample["json"].update(status="failed_to_download", error_message="HTTP 404")
            else:
                with open(videos["one_frame.mp4"], "rb") as f:
                    sample["mp4"] = f.read()
            if i == 7:
                sample["json"]["license"] = "cc-by"
            if i == 8:
                sample["json"]["rank"] = 8.5
            sink.write(sample)
    dest = tmp_path / "out"
    assert encode(src, dest, checkpoint) == 1
    ds = datasets.load_dataset(str(dest), split="train")
    assert ds.num_rows == 10
    assert ds[6]["json"]["status"] == "failed_to_download"
    assert ds[6]["json"]["error_message"] == "HTTP 404"
    assert ds[7]["json"]["license"] == "cc-by" and ds[0]["json"]["license"] is None
    assert [r["json"]["rank"] for r in ds][7:9] == [7.0, 8.5]
    stats = json.loads((dest / "00000_stats.json").read_text())
    assert stats["json_fields"]["license"] == {"dtype": "string"}


def test_its_cache_never_serves_another_folders_or_an_older_states_rows(videos, tmp_path,
                                                                        checkpoint):  # fmt: skip
    """``datasets`` caches a folder by its name and its card, not by its files: two
    destinations named alike (other weights, same shapes), and one destination before and
    after ``--retry-failed``, must each read as they are."""
    cache = str(tmp_path / "hf-cache")

    def loaded(dest):
        rows = datasets.load_dataset(str(dest), split="train", cache_dir=cache)
        return [(r["json"]["status"], np.asarray(r["npy"], dtype=np.float16)) for r in rows]

    def ours(dest):
        return [(m["status"], np.zeros((0,)) if e is None else e)
                for _, e, m in iter_samples(str(dest), include_failed=True)]  # fmt: skip

    def same(a, b):
        pairs = zip(a, b, strict=True) if len(a) == len(b) else None
        return pairs is not None and all(
            s == t and np.array_equal(x.reshape(-1), y.reshape(-1)) for (s, x), (t, y) in pairs
        )

    src = tmp_path / "videos.parquet"
    later = tmp_path / "arrives-later.mp4"
    pq.write_table(pa.table({"location": [videos["cfr.mp4"], str(later)]}), src)
    first, second = tmp_path / "a" / "out", tmp_path / "b" / "out"
    assert encode(src, first, checkpoint) == 1
    assert encode(src, second, checkpoint, "--pretrained", "none") == 1  # other weights
    assert same(loaded(first), ours(first))
    assert same(loaded(second), ours(second))
    assert not same(ours(first), ours(second))
    later.write_bytes(open(videos["cfr.mp4"], "rb").read())
    assert encode(src, second, checkpoint, "--pretrained", "none", "--retry-failed") == 0
    after = loaded(second)
    assert [s for s, _ in after] == ["success", "success"] and same(after, ours(second))
