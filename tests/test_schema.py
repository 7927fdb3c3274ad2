"""One parquet schema for every shard of a dataset, whatever each shard's values are."""

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import webdataset as wds
from conftest import MODEL

from clip_video_encode.cli import main


def encode(src, dest, checkpoint, *extra):
    argv = [str(src), "--dest", str(dest), "--model", MODEL, "--pretrained", checkpoint]
    return main([*argv, "--num-frames", "2", "--quiet", "--workers", "1", *extra])


def read_whole(dest):
    paths = sorted(str(p) for p in dest.glob("*.parquet"))
    schemas = [pq.read_schema(p) for p in paths]
    assert all(s.equals(schemas[0]) for s in schemas), schemas
    whole = pq.read_table(paths)
    assert ds.dataset(paths).to_table().num_rows == whole.num_rows
    import pandas as pd

    assert len(pd.read_parquet(paths)) == whole.num_rows
    return whole


def test_a_column_null_in_a_whole_shard_keeps_its_type(videos, tmp_path, checkpoint):
    table = pa.table({
        "location": [videos["cfr.mp4"], videos["vfr.mp4"], videos["cfr.mp4"], "/no/such.mp4"],
        "caption": ["a", "b", None, "d"],
        "id": pa.array([None, None, 7, 8], pa.int64()),
        "score": pa.array([None, None, 0.5, 0.7], pa.float64()),
        "label": pa.array([None, None, 3, None], pa.int64()),
        "nothing": pa.array([None] * 4, pa.null()),
        "start": pa.array([None, None, None, None], pa.float64()),
    })  # fmt: skip
    src = tmp_path / "videos.parquet"
    pq.write_table(table, src)
    dest = tmp_path / "out"
    args = ("--samples-per-shard", "2", "--save-columns", "score,label,nothing")
    assert encode(src, dest, checkpoint, *args, "--allow-failures") == 0
    whole = read_whole(dest)
    assert whole.schema.field("score").type == pa.float64()
    assert whole.schema.field("label").type == pa.int64()
    assert whole.schema.field("nothing").type == pa.string()
    assert whole.schema.field("error_message").type == pa.string()
    assert whole.column("score").to_pylist() == [None, None, 0.5, 0.7]
    assert whole.column("id").to_pylist() == [None, None, "7", "8"]
    assert whole.column("status").to_pylist()[3] == "failed_to_fetch"


def test_tar_input_fields_are_one_type_in_every_shard(videos, tmp_path, checkpoint):
    src = tmp_path / "src"
    src.mkdir()
    with open(videos["cfr.mp4"], "rb") as f:
        video = f.read()
    rows = {
        "00000": [{"__key__": "a", "mp4": video, "json": {"status": "success", "width": None,
                                                          "error_message": None}}],
        "00001": [{"__key__": "b", "mp4": video, "json": {"status": "success", "width": 320,
                                                          "error_message": "x", "tags": [1]}}],
    }  # fmt: skip
    for name, samples in rows.items():
        with wds.TarWriter(str(src / f"{name}.tar")) as sink:
            for sample in samples:
                sink.write(sample)
    dest = tmp_path / "out"
    assert encode(src / "{00000..00001}.tar", dest, checkpoint) == 0
    paths = sorted(str(p) for p in dest.glob("*.parquet"))
    for path in paths:
        schema = pq.read_schema(path)
        assert all(schema.field(n).type != pa.null() for n in schema.names), (
            schema
        )  # no column typed null
    whole = pq.read_table(paths, schema=pq.read_schema(paths[1]))
    assert whole.column("tags").to_pylist() == [None, "[1]"]
