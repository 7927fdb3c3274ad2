"""Real inputs that broke: NaN from pandas, keys that collide once sanitised, video2dataset's
failed samples."""

import json
import os
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from conftest import MODEL

from clip_video_encode.cli import main as encode_main
from clip_video_encode.read import iter_samples
from video2numpy.cli import main as v2n_main


def strict(text):
    """Parse as a strict parser would: NaN and Infinity are not JSON."""

    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def encode(src, dest, checkpoint, *extra):
    argv = [str(src), "--dest", str(dest), "--model", MODEL, "--pretrained", checkpoint]
    return encode_main([*argv, "--fps", "2", "--quiet", "--workers", "1", *extra])


def nan_table(videos, tmp_path):
    """What pandas writes for missing numbers: NaN, in the window and in a copied column."""
    table = pa.table({
        "location": [videos["cfr.mp4"], videos["cfr.mp4"]],
        "caption": ["a", "b"],
        "start": [float("nan"), 1.0],
        "end": [float("nan"), float("nan")],
        "score": [float("nan"), 0.5],
        "scores": [[1.0, float("nan")], [float("inf")]],
    })  # fmt: skip
    path = tmp_path / "nan.parquet"
    pq.write_table(table, path)
    return path


def test_nan_never_reaches_a_record(videos, tmp_path, checkpoint):
    src = nan_table(videos, tmp_path)
    dest = tmp_path / "encoded"
    assert encode(src, dest, checkpoint, "--save-columns", "score,scores") == 0
    import tarfile

    with tarfile.open(dest / "00000.tar") as tar:
        metas = [strict(tar.extractfile(m).read()) for m in tar if m.name.endswith(".json")]
    assert [m["start"] for m in metas] == [None, 1.0] and [m["end"] for m in metas] == [None] * 2
    assert metas[0]["score"] is None and metas[0]["scores"] == [1.0, None]
    assert metas[1]["scores"] == [None]
    assert metas[0]["n_frames"] == 6  # a NaN bound is no bound: the whole 3 s video
    assert metas[1]["timestamps"][0] == 1.0
    strict((dest / "00000_stats.json").read_text())
    strict((dest / "run.json").read_text())

    frames = tmp_path / "frames"
    code = v2n_main([str(src), "--dest", str(frames), "--fps", "2", "--size", "32",
                     "--workers", "1", "--save-columns", "score,scores"])  # fmt: skip
    assert code == 0
    records = [strict(p.read_text()) for p in sorted(frames.glob("*.json"))
               if p.name != "run.json"]  # fmt: skip
    assert len(records) == 2 and records[0]["score"] is None and records[0]["start"] is None
    assert records[0]["scores"] == [1.0, None] and records[0]["n_frames"] == 6


def test_keys_stay_unique_once_sanitised(videos, tmp_path, checkpoint):
    src = tmp_path / "00000.tar"
    with wds.TarWriter(str(src)) as sink:
        for key, name in [
            ("my key", "cfr.mp4"),
            ("my_key", "one_frame.mp4"),
            ("my+key", "vfr.mp4"),
        ]:
            with open(videos[name], "rb") as f:
                sink.write({"__key__": key, "mp4": f.read(), "txt": name})
    runs = []
    for attempt in ("a", "b"):
        dest = tmp_path / attempt
        assert encode(src, dest, checkpoint) == 0

        with tarfile.open(dest / "00000.tar") as tar:
            names = [m.name for m in tar]
        assert len(names) == len(set(names)) == 9
        got = [(k, m.get("source_key"), m["caption"]) for k, _, m in iter_samples(str(dest))]
        runs.append(got)
        assert len(list(wds.WebDataset(str(dest / "00000.tar"), shardshuffle=False))) == 3
    assert runs[0] == runs[1]  # the same keys on every run
    keys = [k for k, _, _ in runs[0]]
    assert keys[0] == "my_key" and keys[1].startswith("my_key_") and keys[2].startswith("my_key_")
    assert [s for _, s, _ in runs[0]] == ["my key", "my_key", "my+key"]
    assert [c for _, _, c in runs[0]] == ["cfr.mp4", "one_frame.mp4", "vfr.mp4"]


def test_upstream_failures_keep_their_status(videos, tmp_path, checkpoint):
    """A sample video2dataset failed: json and txt, no video, its own status and message."""
    src = tmp_path / "00000.tar"
    with wds.TarWriter(str(src)) as sink, open(videos["cfr.mp4"], "rb") as f:
        sink.write(
            {
                "__key__": "000000000",
                "mp4": f.read(),
                "txt": "fine",
                "json": {"key": "000000000", "status": "success", "url": "http://a"},
            }
        )
        sink.write(
            {
                "__key__": "000000001",
                "txt": "gone",
                "json": {
                    "key": "000000001",
                    "status": "failed_to_download",
                    "error_message": "HTTP Error 404: Not Found",
                    "url": "http://b",
                },
            }
        )
        sink.write({"__key__": "000000002", "txt": "no member, no status"})  # fmt: skip
    dest = tmp_path / "out"
    assert encode(src, dest, checkpoint) == 1
    got = {k: m for k, _, m in iter_samples(str(dest), include_failed=True)}
    assert got["000000000"]["status"] == "success"
    assert got["000000001"]["status"] == "failed_to_download"
    assert got["000000001"]["error_message"] == "HTTP Error 404: Not Found"
    assert got["000000001"]["url"] == "http://b"
    assert got["000000002"]["status"] == "failed_to_fetch"
    assert "no video member" in got["000000002"]["error_message"]
    stats = json.loads((dest / "00000_stats.json").read_text())
    assert stats["status_dict"] == {"failed_to_download": 1, "failed_to_fetch": 1, "success": 1}


def test_unusable_input_fails_before_the_model_and_the_destination(
    tmp_path, checkpoint, monkeypatch, capsys
):
    import clip_video_encode.execute.local as local

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded for an unusable input")

    monkeypatch.setattr(local, "Encoder", no_model)
    empty = tmp_path / "empty.csv"
    empty.write_text("location,caption\n")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("path,caption\n/a.mp4,x\n")
    cases = {
        "has no rows": empty,
        "no column 'location'": wrong,
        "no such tar": tmp_path / "shards" / "{00000..00003}.tar",
        "input table not found": tmp_path / "absent.parquet",
    }
    for message, src in cases.items():
        for distributor in ("local", "ray"):
            dest = tmp_path / "dest"
            capsys.readouterr()
            assert encode(src, dest, checkpoint, "--distributor", distributor) == 2
            err = capsys.readouterr().err.strip()
            assert message in err and "\n" not in err and "Traceback" not in err, err
            assert not dest.exists()
    import ray

    assert not ray.is_initialized()  # the Ray executor checked before starting anything


def test_search_on_a_folder_that_is_not_a_dataset(tmp_path, capsys):
    from clip_video_encode.search.cli import main as search_main

    folder = tmp_path / "not_a_dataset"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    assert search_main([str(folder), "a dog"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a clip-video-encode dataset" in err and "\n" not in err
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_text_that_is_not_utf8_is_an_error_or_read_as_told(videos, tmp_path, checkpoint, capsys):
    """A csv saved by Excel in cp1252: without --encoding one line naming the row and column
    and suggesting --encoding, nothing written; with it, the text as it was."""
    src = tmp_path / "excel.csv"
    lines = ["location,caption", f"{videos['cfr.mp4']},plain", f"{videos['vfr.mp4']},café “quoted”"]
    src.write_bytes("\n".join(lines).encode("cp1252") + b"\n")
    for run in ("encode", "video2numpy"):
        dest = tmp_path / run
        capsys.readouterr()
        if run == "encode":
            code = encode(src, dest, checkpoint)
        else:  # video2numpy reports input errors as argparse does: exit 2
            with pytest.raises(SystemExit) as stop:
                v2n_main([str(src), "--dest", str(dest), "--num-frames", "1", "--size", "32",
                          "--workers", "1"])  # fmt: skip
            code = stop.value.code
        err = capsys.readouterr().err
        assert code == 2, err
        assert "row 2, column 'caption'" in err and "--encoding" in err and "Traceback" not in err
        assert "\ufffd" not in err
        assert not dest.exists() or not any(dest.iterdir())
    assert encode(src, tmp_path / "ok", checkpoint, "--encoding", "cp1252") == 0
    captions = [m["caption"] for _, _, m in iter_samples(str(tmp_path / "ok"))]
    assert captions == ["plain", "café “quoted”"]
    code = v2n_main([str(src), "--dest", str(tmp_path / "frames"), "--num-frames", "1",
                     "--size", "32", "--workers", "1", "--encoding", "cp1252"])  # fmt: skip
    assert code == 0
    records = [strict(p.read_text()) for p in sorted((tmp_path / "frames").glob("*.json"))
               if p.name != "run.json"]  # fmt: skip
    assert [r["caption"] for r in records] == ["plain", "café “quoted”"]


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(2, 130), (15, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_stopped_run_is_clean_and_resumes(videos, tmp_path, checkpoint, signum, code):
    import subprocess
    import sys
    import time

    names = ["cfr.mp4", "vfr.mp4", "long.mp4", "ntsc.mp4", "one_frame.mp4", "portrait.mp4"]
    listing = tmp_path / "videos.txt"
    listing.write_text("\n".join(videos[n] for n in names))
    dest = tmp_path / "out"
    argv = [sys.executable, "-m", "clip_video_encode.cli", str(listing), "--dest", str(dest),
            "--model", MODEL, "--pretrained", checkpoint, "--fps", "2", "--samples-per-shard",
            "2", "--batch-size", "8", "--workers", "1", "--quiet"]  # fmt: skip
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (dest / "00000_stats.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signum)  # the driver only, as a scheduler or kill would
    _, err = proc.communicate(timeout=120)
    err = err.decode()
    assert proc.returncode == code, err
    assert "stopped by" in err and "rerun" in err and "Traceback" not in err
    assert not (dest / "00002_stats.json").exists(), "the run finished before the signal"
    assert not [p for p in os.listdir(dest) if p.endswith(".partial")]
    for name in os.listdir(dest):  # nothing under a final name without its marker
        if name.endswith((".tar", ".parquet")):
            assert (dest / f"{name.split('.')[0]}_stats.json").exists(), name
    assert subprocess.run(argv, timeout=300).returncode == 0
    assert len(list(iter_samples(str(dest)))) == 6


def test_tar_text_that_is_not_utf8_is_said_never_replaced(videos, tmp_path, checkpoint):
    """An input tar's txt and json in cp1252: left out with a warning, or read as told."""
    src = tmp_path / "00000.tar"
    with wds.TarWriter(str(src)) as sink, open(videos["one_frame.mp4"], "rb") as f:
        video = f.read()
        sink.write({"__key__": "a", "mp4": video, "txt": "café".encode("cp1252"),
                    "json": '{"title": "naïve"}'.encode("cp1252")})  # fmt: skip
        sink.write({"__key__": "b", "mp4": video, "txt": b"plain"})
    for extra, caption in [((), None), (("--encoding", "cp1252"), "café")]:
        dest = tmp_path / f"out{len(extra)}"
        assert encode(src, dest, checkpoint, *extra) == 0
        got = {k: m for k, _, m in iter_samples(str(dest))}
        with tarfile.open(dest / "00000.tar") as tar:
            texts = [tar.extractfile(m).read().decode("utf-8") for m in tar if m.name[-3:] != "npy"]
        assert not any("\ufffd" in t for t in texts)
        assert got["a"]["caption"] == caption and got["b"]["caption"] == "plain"
        stats = json.loads((dest / "00000_stats.json").read_text())
        if caption is None:
            assert "not UTF-8 text" in got["a"]["warning"] and "--encoding" in got["a"]["warning"]
            assert "title" not in got["a"] and stats["warnings"] == 1
        else:
            assert got["a"]["title"] == "naïve" and "warning" not in got["a"]
            assert stats["warnings"] == 0
