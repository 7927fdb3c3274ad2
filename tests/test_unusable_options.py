"""A device torch cannot use and a text encoding Python does not know are usage errors in
every tool (exit 2, one line naming the option), never a traceback, and nothing is written."""

from __future__ import annotations

import pytest
from conftest import MODEL

from clip_video_encode.cli import main as encode_main


@pytest.fixture(scope="module")
def dataset(videos, checkpoint, tmp_path_factory):
    root = tmp_path_factory.mktemp("unusable")
    table = root / "videos.csv"
    table.write_text(f"location,caption\n{videos['cfr.mp4']},a red square\n")
    dest = root / "embeddings"
    code = encode_main([str(table), "--dest", str(dest), "--model", MODEL, "--pretrained",
                        checkpoint, "--num-frames", "4", "--quiet"])  # fmt: skip
    assert code == 0
    return table, dest


BAD_DEVICES = ["tpu", "cuda:99", "cdua"]


def _usage_error(capsys, code: int, option: str) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert option in err, err
    return err


@pytest.mark.parametrize("device", BAD_DEVICES)
def test_encode_refuses_a_device_before_the_destination(dataset, checkpoint, tmp_path, capsys,
                                                        device):  # fmt: skip
    table, _ = dataset
    dest = tmp_path / "out"
    code = encode_main([str(table), "--dest", str(dest), "--model", MODEL, "--pretrained",
                        checkpoint, "--device", device, "--quiet"])  # fmt: skip
    _usage_error(capsys, code, "--device")
    assert not dest.exists()


def test_every_tool_refuses_an_unusable_device(dataset, checkpoint, tmp_path, capsys):
    from clip_video_encode.search.cli import main as search_main
    from clip_video_encode.summarize.cli import main as summarize_main
    from clip_video_encode.video_models.cli import pool_main

    _, dest = dataset
    runs = {
        "clip-video-search": lambda: search_main(
            [str(dest), "a red square", "--pretrained", checkpoint, "--device", "tpu"]),
        "clip-video-pool": lambda: pool_main(
            [str(dest), "--out", str(tmp_path / "pooled.npy"), "--device", "tpu"]),
        "clip-video-summarize": lambda: summarize_main(
            [str(dest), "--out", str(tmp_path / "summaries"), "--query", "a red square",
             "--pretrained", checkpoint, "--device", "tpu"]),
    }  # fmt: skip
    for tool, run in runs.items():
        try:
            code = run()
        except SystemExit as exc:
            code = exc.code
        _usage_error(capsys, code, "--device")
        assert not list(tmp_path.iterdir()), f"{tool} wrote {list(tmp_path.iterdir())}"


def test_encode_and_video2numpy_refuse_an_unknown_encoding(dataset, checkpoint, tmp_path, capsys):
    from video2numpy.cli import main as v2n_main

    table, _ = dataset
    for run in (
        lambda: encode_main([str(table), "--dest", str(tmp_path / "out"), "--model", MODEL,
                             "--pretrained", checkpoint, "--encoding", "no-such-codec"]),
        lambda: v2n_main([str(table), "--dest", str(tmp_path / "frames"),
                          "--encoding", "no-such-codec"]),
    ):  # fmt: skip
        try:
            code = run()
        except SystemExit as exc:
            code = exc.code
        err = _usage_error(capsys, code, "--encoding")
        assert "no-such-codec" in err
    assert not list(tmp_path.iterdir())


def test_video_convert_refuses_an_unknown_encoding(tmp_path, capsys):
    from converters.cli import main as convert_main

    source = tmp_path / "kinetics.csv"
    source.write_text("label,youtube_id,time_start,time_end,split\nx,abcdefghijk,0,10,train\n")
    try:
        code = convert_main(["kinetics", str(source), "--out", str(tmp_path / "t.parquet"),
                             "--encoding", "no-such-codec"])  # fmt: skip
    except SystemExit as exc:
        code = exc.code
    _usage_error(capsys, code, "--encoding")
    assert not (tmp_path / "t.parquet").exists()


@pytest.mark.parametrize("encoding", ["rot13", "base64", "hex", "zlib"])
def test_a_codec_that_is_not_a_text_encoding_is_refused(dataset, checkpoint, tmp_path, capsys,
                                                        encoding):  # fmt: skip
    """rot13, base64, ... are codecs Python knows, but not text encodings: a file cannot be
    read with them (the reader failed with a TypeError traceback or 'Incorrect padding')."""
    table, _ = dataset
    try:
        code = encode_main([str(table), "--dest", str(tmp_path / "out"), "--model", MODEL,
                            "--pretrained", checkpoint, "--encoding", encoding])  # fmt: skip
    except SystemExit as exc:
        code = exc.code
    err = _usage_error(capsys, code, "--encoding")
    assert encoding in err
    assert not list(tmp_path.iterdir())


def test_the_meta_device_is_refused_before_the_destination(dataset, checkpoint, tmp_path,
                                                           capsys):  # fmt: skip
    """torch places a tensor on 'meta' but holds no data there: every row came out
    failed_to_encode, in a dataset written for nothing."""
    table, _ = dataset
    dest = tmp_path / "out"
    code = encode_main([str(table), "--dest", str(dest), "--model", MODEL, "--pretrained",
                        checkpoint, "--device", "meta", "--quiet"])  # fmt: skip
    _usage_error(capsys, code, "--device")
    assert not dest.exists()


@pytest.mark.parametrize("option", [["--start", "nan"], ["--end", "inf"], ["--fps", "inf"]])
def test_encode_refuses_a_window_that_is_no_number(dataset, checkpoint, tmp_path, capsys,
                                                   option):  # fmt: skip
    """--start nan left a run.json cut short at the start (json refuses NaN midway), and a
    rerun then took the destination for another tool's."""
    table, _ = dataset
    try:
        code = encode_main([str(table), "--dest", str(tmp_path / "out"), "--model", MODEL,
                            "--pretrained", checkpoint, *option])  # fmt: skip
    except SystemExit as exc:
        code = exc.code
    _usage_error(capsys, code, option[0])
    assert not list(tmp_path.iterdir())
