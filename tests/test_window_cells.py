"""A table's start/end cells: the common time forms are read as seconds, and a cell that is no
time stops the run before anything is loaded or written, naming its row, column and value."""

import datetime
import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import MODEL
from hypothesis import given, settings
from hypothesis import strategies as st

from clip_video_encode.cli import main
from clip_video_encode.plan.shards import Columns, plan_shards
from clip_video_encode.read import iter_samples


def parse_seconds(cell):
    from video2numpy.table import parse_seconds

    return parse_seconds(cell)


def encode(src, dest, checkpoint, *extra):
    argv = [str(src), "--dest", str(dest), "--model", MODEL, "--pretrained", checkpoint]
    return main([*argv, "--fps", "2", "--quiet", "--workers", "1", "--batch-size", "16", *extra])


@pytest.mark.parametrize(("cell", "seconds"), [
    ("12.5", 12.5), (" 3 ", 3.0), ("12.5s", 12.5), ("2 s", 2.0), ("0:00:01", 1.0),
    ("1:02:03.25", 3723.25), ("01:30", 90.0), ("90:00", 5400.0), ("0:00:01.5", 1.5),
    ("", None), ("nan", None), ("inf", math.inf), ("-2", -2.0), (None, None), (7, 7.0),
    (2.5, 2.5), (float("nan"), None), (datetime.timedelta(minutes=1, seconds=2), 62.0),
    (datetime.time(0, 1, 30, 500_000), 90.5),
])  # fmt: skip
def test_time_forms(cell, seconds):
    assert parse_seconds(cell) == seconds


NOT_TIMES = ["1s2", "0:60", "1:75:00", "abc", "1 min", "1:2:3:4", ":30", "1,5", "12.5ss", True,
             [1.0], "0x10", "1e3s", "-0:01"]  # fmt: skip


@pytest.mark.parametrize("cell", NOT_TIMES)
def test_what_is_no_time(cell):
    with pytest.raises(ValueError, match="not a time"):
        parse_seconds(cell)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 99), st.integers(0, 59), st.integers(0, 59), st.integers(0, 999))
def test_hh_mm_ss_round_trips(h, m, s, ms):
    expected = h * 3600 + m * 60 + s + ms / 1000
    assert parse_seconds(f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}") == pytest.approx(expected)
    assert parse_seconds(f"{h * 60 + m}:{s:02d}.{ms:03d}") == pytest.approx(expected)
    assert parse_seconds(f"{expected}s") == pytest.approx(expected)


def test_a_cell_that_is_no_time_is_named_before_anything_is_written(tmp_path, videos,
                                                                    checkpoint,
                                                                    capsys):  # fmt: skip
    src, dest = tmp_path / "videos.csv", tmp_path / "out"
    rows = [f"{videos['cfr.mp4']},0,2", f"{videos['cfr.mp4']},0:00:01,1.5s",
            f"{videos['cfr.mp4']},1,1 minute"]  # fmt: skip
    src.write_text("location,start,end\n" + "\n".join(rows) + "\n")
    assert encode(src, dest, checkpoint) == 2
    err = capsys.readouterr().err
    assert "row 3" in err and "'end'" in err and "'1 minute'" in err
    assert "HH:MM:SS" in err and len(err.strip().splitlines()) == 1
    assert not dest.exists()  # nothing created: the table was checked first


def test_a_parquet_time_column_too(tmp_path):
    table = pa.table({"location": ["a.mp4", "b.mp4"], "start": ["0:01", "oops"]})
    pq.write_table(table, tmp_path / "t.parquet")
    with pytest.raises(ValueError, match=r"row 2, column 'start': 'oops'"):
        plan_shards(table, Columns(), 10)
    renamed = table.rename_columns(["location", "from"])  # --start-col from
    with pytest.raises(ValueError, match="column 'from'"):
        plan_shards(renamed, Columns(start="from"), 10)


def test_time_forms_give_the_window_in_seconds(tmp_path, videos, checkpoint, capsys):
    """cfr.mp4 is 3 s at 30 fps: windows written as times sample the same frames as seconds;
    an empty cell is no bound; a window that is no window (end before start, a negative
    start) fails its row alone, as before, with the reason."""
    src, dest = tmp_path / "videos.csv", tmp_path / "out"
    cfr = videos["cfr.mp4"]
    src.write_text("location,start,end\n"
                   f"{cfr},1,2.5\n{cfr},0:00:01,0:00:02.5\n{cfr},1s,2.5s\n{cfr},,0:02\n"
                   f"{cfr},2,1\n{cfr},-1,2\n")  # fmt: skip
    assert encode(src, dest, checkpoint) == 1  # the last two rows fail
    samples = list(iter_samples(str(dest), include_failed=True))
    metas = [m for _, _, m in samples]
    assert [(m["start"], m["end"]) for m in metas[:4]] == [(1.0, 2.5)] * 3 + [(None, 2.0)]
    assert metas[0]["timestamps"] == metas[1]["timestamps"] == metas[2]["timestamps"]
    assert all(1.0 <= t < 2.5 for t in metas[1]["timestamps"])
    assert max(metas[3]["timestamps"]) < 2.0
    assert [m["status"] for m in metas[4:]] == ["failed_to_decode"] * 2
    assert "must be after start" in metas[4]["error_message"]
    assert "start must be >= 0" in metas[5]["error_message"]
    run = json.loads((dest / "run.json").read_text())
    assert run["rows"] == 6
