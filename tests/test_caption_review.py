"""clip-video-caption as a demanding user breaks it: user mistakes get one line that says what
is wrong and what to do (exit 2, no traceback), inputs are never written over, one run per
--out."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("pycocoevalcap")

from clip_video_encode.caption.cli import main  # noqa: E402

REFS = [{"videoID": "v1", "enCap": ["a man plays a guitar", "someone plays guitar"]},
        {"videoID": "v2", "enCap": ["a dog runs in the park", "the dog is running"]}]  # fmt: skip


def _files(tmp_path):
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps(REFS))
    pred = tmp_path / "pred.txt"
    pred.write_text("v1|a man plays the guitar\nv2|a dog is running\n")
    return str(pred), str(refs)


def _no_traceback(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return err


def test_eval_of_a_folder_that_is_no_dataset_says_so(tmp_path, capsys):
    pred, refs = _files(tmp_path)
    folder = tmp_path / "videos"
    folder.mkdir()
    assert main(["eval", pred, "--refs", str(folder), "--tokenizer", "python"]) == 2
    err = _no_traceback(capsys)
    assert "is a folder" in err and "clip-video-encode dataset" in err
    assert main(["eval", str(folder), "--refs", refs, "--tokenizer", "python"]) == 2
    assert "is a folder" in _no_traceback(capsys)


def test_a_reference_table_without_its_columns_names_the_refs_options(tmp_path, capsys):
    pred, _ = _files(tmp_path)
    refs = tmp_path / "refs.csv"
    refs.write_text("video,text\nv1,a man\n")
    assert main(["eval", pred, "--refs", str(refs), "--tokenizer", "python"]) == 2
    err = _no_traceback(capsys)
    assert "--refs-id-field" in err and "--refs-caption-field" in err
    table = tmp_path / "pred.csv"
    table.write_text("video,text\nv1,a man\n")
    assert main(["eval", str(table), "--refs", str(refs), "--tokenizer", "python"]) == 2
    err = _no_traceback(capsys)
    assert "--id-field" in err and "--refs-id-field" not in err


def test_per_sample_never_writes_over_an_input(tmp_path, capsys):
    pred, refs = _files(tmp_path)
    table = tmp_path / "captions.parquet"
    pq.write_table(pa.table({"id": ["v1", "v2"], "caption": ["a man", "a dog"]}), table)
    before = table.read_bytes()
    for target, source in ((str(table), str(table)), (refs, pred)):
        args = ["eval", source, "--refs", refs, "--tokenizer", "python", "--no-meteor",
                "--per-sample", target]  # fmt: skip
        with open(target, "rb") as f:
            kept = f.read()
        assert main(args) == 2
        assert "is an input" in _no_traceback(capsys)
        with open(target, "rb") as f:
            assert f.read() == kept
    assert table.read_bytes() == before


def test_an_unknown_encoding_is_a_usage_error(tmp_path, capsys):
    pred, refs = _files(tmp_path)
    for flag in ("--encoding", "--refs-encoding"):
        with pytest.raises(SystemExit) as stop:  # argparse's usage error
            main(["eval", pred, "--refs", refs, flag, "no-such-codec"])
        assert stop.value.code == 2
        assert f"{flag}: 'no-such-codec'" in _no_traceback(capsys)
    src = tmp_path / "in.csv"
    src.write_text(f"location\n{tmp_path / 'x.mp4'}\n")
    with pytest.raises(SystemExit) as stop:  # argparse's usage error, before a model loads
        main([str(src), "--out", str(tmp_path / "c.parquet"), "--encoding", "no-such-codec"])
    assert stop.value.code == 2
    assert "no-such-codec" in _no_traceback(capsys)
    assert not os.path.exists(tmp_path / "c.parquet.parts")


@pytest.mark.parametrize("seconds", ["inf", "-inf", "1e400"])
def test_window_seconds_must_be_finite(tmp_path, capsys, seconds):
    src = tmp_path / "in.csv"
    src.write_text(f"location\n{tmp_path / 'x.mp4'}\n")
    with pytest.raises(SystemExit) as stop:
        main([str(src), "--out", str(tmp_path / "c.parquet"), "--per", "window",
              "--window-seconds", seconds])  # fmt: skip
    assert stop.value.code == 2
    assert "--window-seconds" in _no_traceback(capsys)


@pytest.mark.parametrize("device", ["cuda:99", "tpu"])
def test_a_device_that_cannot_be_used_is_a_usage_error(tmp_path, capsys, device):
    """Checked before any model is loaded: no GPU here (or not that many), or a typo."""
    pytest.importorskip("transformers")
    src = tmp_path / "in.csv"
    src.write_text(f"location\n{tmp_path / 'x.mp4'}\n")
    out = tmp_path / "c.parquet"
    assert main([str(src), "--out", str(out), "--device", device, "--quiet"]) == 2
    err = _no_traceback(capsys)
    assert f"--device {device} cannot be used here" in err and "--device cpu" in err
    assert not os.path.exists(f"{out}.parts")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    pytest.importorskip("transformers")
    from clip_video_encode.caption.synthetic import save_random_captioner

    return save_random_captioner(str(tmp_path_factory.mktemp("tiny-captioner")))


@pytest.fixture(scope="module")
def three(tmp_path_factory) -> str:
    from video2numpy.synth import write_video

    path = str(tmp_path_factory.mktemp("review-videos") / "three.mp4")
    write_video(path, n_frames=90, fps=30, width=96, height=72)
    return path


def test_one_run_per_out(tiny, three, tmp_path, capsys):
    """A second run on an --out whose run is alive is refused before it touches the parts
    folder (it removed the first run's files in progress and redid its shards beside it);
    once that run is gone, the same command runs and leaves no lease behind."""
    import fsspec

    from clip_video_encode.caption.table import parts_path
    from clip_video_encode.destination.lease import Lease

    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"location": [three, three]}), src)
    out = tmp_path / "c.parquet"
    parts = parts_path(str(out))
    os.makedirs(parts)
    args = [str(src), "--out", str(out), "--model", tiny, "--quiet", "--num-beams", "1"]
    with Lease(fsspec.filesystem("file"), parts):  # another run, alive, holds --out
        assert main(args) == 2
        err = _no_traceback(capsys)
        assert "in use by another run" in err and "--out" in err and "--dest" not in err
        assert sorted(os.listdir(parts)) == ["_lease.json"]  # nothing bound, nothing written
    assert main(args) == 0
    assert pq.read_table(out).num_rows == 2
    assert "_lease.json" not in os.listdir(parts)


def test_a_tars_json_fields_never_overwrite_the_tables_own_columns(tiny, three, tmp_path):
    """video2dataset's json holds key, status, error_message, caption and often start or
    duration: carried as input_NAME (as a table's columns are), never over the clip's own
    record; a json field of another type than the column of its name cost the whole run."""
    import webdataset as wds

    tar = tmp_path / "00000.tar"
    meta = {"key": "000000000", "status": "success", "error_message": None, "url": "http://x",
            "start": 12.5, "duration": 99.0, "window": "w", "input_status": "own"}  # fmt: skip
    with wds.TarWriter(str(tar)) as sink:
        sink.write({"__key__": "000000000", "mp4": open(three, "rb").read(), "json": meta})
        sink.write({"__key__": "000000001", "json": {"status": "success", "start": 1.0}})
    out = tmp_path / "c.parquet"
    args = [str(tar), "--out", str(out), "--model", tiny, "--quiet", "--num-beams", "1"]
    assert main(args) == 1  # the second sample has no video
    ok, bad = pq.read_table(out).to_pylist()
    assert (ok["status"], ok["start"], ok["end"], ok["window"]) == ("success", None, None, 0)
    assert ok["duration"] == 3.0 and ok["frame_timestamps"][-1] < 3.0
    assert (ok["input_start"], ok["input_duration"], ok["input_window"]) == ("12.5", "99.0", "w")
    assert (ok["input_status"], ok["input_input_status"], ok["url"]) == ("own", "success",
                                                                         "http://x")  # fmt: skip
    assert (bad["status"], bad["start"], bad["input_start"]) == ("failed_to_fetch", None, "1.0")
    assert "no video member" in bad["error_message"]


def test_an_unclosed_quote_in_a_pipe_file_is_named_not_swallowed(tmp_path, capsys):
    """A pipe file is read as Python's csv module writes it (quoted fields may hold a '|');
    a quote opened and never closed on its line would swallow the lines after it into one
    caption, and those videos would go missing without a word."""
    _, refs = _files(tmp_path)
    pred = tmp_path / "pred.txt"
    pred.write_text('v1|"a man plays the guitar\nv2|a dog is running\n')
    assert main(["eval", str(pred), "--refs", refs, "--missing", "skip"]) == 2
    err = _no_traceback(capsys)
    assert "line 1" in err and "quote" in err
    quoted = tmp_path / "quoted.txt"  # what csv writes for a caption holding '|' and '"'
    quoted.write_text('v1|"a man | plays ""the"" guitar"\nv2|a dog is running\n')
    assert main(["eval", str(quoted), "--refs", refs, "--json"]) == 0


def test_an_unclosed_quote_on_a_pipe_files_last_line_is_named_too(tmp_path, capsys):
    """The same unclosed quote on the last line of a file with no final newline was read as
    a caption (its quote dropped): the error depended on whether the file ended in a newline."""
    _, refs = _files(tmp_path)
    pred = tmp_path / "pred.txt"
    pred.write_text('v2|a dog is running\nv1|"a man plays the guitar')
    assert main(["eval", str(pred), "--refs", refs, "--missing", "skip"]) == 2
    err = _no_traceback(capsys)
    assert "line 2" in err and "quote" in err
