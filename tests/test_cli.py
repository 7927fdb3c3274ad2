import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from video2numpy.cli import main, output_names
from video2numpy.synth import frame_index


def test_table_to_npy_and_resume(videos, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(videos["vp9.webm"], other / "cfr.mp4")  # same basename as cfr.mp4
    table = pa.table(
        {
            "path": [
                videos["cfr.mp4"],
                str(other / "cfr.mp4"),
                videos["missing.mp4"],
                videos["ntsc.mp4"],
            ],
            "id": [None, None, None, "clip/../x"],
            "start": [None, None, None, 1.0],
            "end": [None, None, None, 3.0],
        }
    )
    pq.write_table(table, tmp_path / "in.parquet")
    dest = tmp_path / "out"
    argv = [
        str(tmp_path / "in.parquet"),
        "--dest",
        str(dest),
        "--fps",
        "2",
        "--size",
        "64",
        "--location-col",
        "path",
        "--workers",
        "2",
    ]
    assert main(argv) == 1  # one video is missing
    summary = capsys.readouterr().err
    assert "4 videos" in summary and "3 succeeded, 1 failed (failed_to_fetch: 1)" in summary

    names = sorted(os.listdir(dest))
    assert names == [
        "cfr_0.json",
        "cfr_0.npy",
        "cfr_1.json",
        "cfr_1.npy",
        "clip_.._x.json",
        "clip_.._x.npy",
        "missing.json",
        "run.json",
    ]
    frames = np.load(dest / "cfr_0.npy")
    meta = json.loads((dest / "cfr_0.json").read_text())
    assert frames.shape == (6, 64, 64, 3) and frames.dtype == np.uint8
    assert [frame_index(f) for f in frames] == [0, 15, 30, 45, 60, 75]
    assert meta["timestamps"] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5] and meta["status"] == "success"
    assert json.loads((dest / "cfr_1.json").read_text())["codec"] == "vp9"
    window = json.loads((dest / "clip_.._x.json").read_text())
    assert window["id"] == "clip/../x" and window["timestamps"][0] == pytest.approx(1.001)
    missing = json.loads((dest / "missing.json").read_text())
    assert missing["status"] == "failed_to_fetch" and "no such file" in missing["error_message"]

    # A rerun redoes only what failed.
    before = os.stat(dest / "cfr_0.npy").st_mtime_ns
    assert main(argv) == 1
    assert "1 videos" in capsys.readouterr().err
    assert os.stat(dest / "cfr_0.npy").st_mtime_ns == before


def test_single_video_and_exit_code_zero(videos, tmp_path):
    dest = tmp_path / "out"
    code = main([videos["vfr.mp4"], "--dest", str(dest), "--num-frames", "8", "--workers", "0"])
    assert code == 0
    assert np.load(dest / "vfr.npy").shape == (8, 224, 224, 3)


def test_text_file_of_locations(videos, tmp_path):
    listing = tmp_path / "videos.txt"
    listing.write_text(f"# test videos\n{videos['cfr.mp4']}\n\n{videos['portrait.mp4']}\n")
    dest = tmp_path / "out"
    assert (
        main(
            [
                str(listing),
                "--dest",
                str(dest),
                "--num-frames",
                "2",
                "--resize-mode",
                "pad",
                "--size",
                "32",
                "--backend",
                "decord",
            ]
        )
        == 0
    )
    assert np.load(dest / "portrait.npy").shape == (2, 32, 32, 3)


def test_usage_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["x.mp4", "--dest", str(tmp_path), "--fps", "1", "--num-frames", "8"])
    assert exc.value.code == 2
    csv = tmp_path / "t.csv"
    csv.write_text("url\nfoo.mp4\n")
    with pytest.raises(SystemExit):
        main([str(csv), "--dest", str(tmp_path)])
    err = capsys.readouterr().err
    assert "has no column 'location'" in err and "its columns are: url" in err


def test_names_are_safe_and_unique():
    rows = [
        {"location": p, "id": None}
        for p in [
            "/a/v.mp4",
            "/b/v.mp4",
            "https://x.org/dl?id=3",
            "dQw4w9WgXcQ",
            "../../etc/passwd",
        ]
    ]
    # A URL's name is its path's file name: a query (a signature, a token) is not part of it.
    assert output_names(rows) == ["v_0", "v_1", "dl", "dQw4w9WgXcQ", "passwd"]


def test_console_script_is_installed(videos, tmp_path):
    exe = shutil.which("video2numpy", path=os.path.dirname(sys.executable))
    assert exe, "pip install -e . should install the video2numpy command"
    out = subprocess.run(
        [exe, videos["cfr.mp4"], "--dest", str(tmp_path), "--fps", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and "1 succeeded" in out.stderr
