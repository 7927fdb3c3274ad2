"""video2numpy reads a table's start/end cells by clip-video-encode's rule: 0:00:01,
1:02:03.5 and 12.5s are seconds, and a cell that is no time is named (row, column, value)
before anything is written."""

import glob
import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from video2numpy.cli import main
from video2numpy.video import Task


def records(dest):
    """The NAME.json records, in table order."""
    out = []
    for path in glob.glob(str(dest / "*.json")):
        if not path.endswith("run.json"):
            with open(path) as f:
                out.append(json.load(f))
    return sorted(out, key=lambda r: r["index"])


def test_time_forms_give_the_window_in_seconds(tmp_path, videos, capsys):
    """cfr.mp4 is 3 s at 30 fps: windows written as times sample the frames the same window
    in seconds does; an empty cell is no bound; a window past the end fails its row alone."""
    cfr = videos["cfr.mp4"]
    src, dest = tmp_path / "videos.csv", tmp_path / "out"
    src.write_text("location,start,end\n"
                   f"{cfr},1,2.5\n{cfr},0:00:01,0:00:02.5\n{cfr},1s,2.5s\n{cfr},,0:02\n"
                   f"{cfr},00:00:01.5,12.5s\n{cfr},1:02:03.5,\n")  # fmt: skip
    argv = [str(src), "--dest", str(dest), "--fps", "4", "--size", "32", "--workers", "1"]
    assert main(argv) == 1  # the last row fails: past the end
    got = records(dest)
    assert [(r["start"], r["end"]) for r in got] == [
        (1.0, 2.5), (1.0, 2.5), (1.0, 2.5), (None, 2.0), (1.5, 12.5), (3723.5, None)]  # fmt: skip
    assert got[0]["timestamps"] == got[1]["timestamps"] == got[2]["timestamps"]
    assert got[0]["timestamps"] and all(1.0 <= t < 2.5 for t in got[0]["timestamps"])
    assert got[3]["timestamps"] and max(got[3]["timestamps"]) < 2.0
    assert got[4]["timestamps"] and min(got[4]["timestamps"]) >= 1.5
    assert [r["status"] for r in got[:5]] == ["success"] * 5
    assert got[5]["status"] != "success" and "3723.5 s, past the end" in got[5]["error_message"]


@pytest.mark.parametrize(("cells", "row", "column", "value"), [
    (["0,2", "0:00:01,1.5s", "1,1 minute"], 3, "end", "'1 minute'"),
    (["abc,2"], 1, "start", "'abc'"),
    (["0:60,"], 1, "start", "'0:60'"),
])  # fmt: skip
def test_a_cell_that_is_no_time_is_named_before_anything_is_written(tmp_path, videos, capsys,
                                                                    cells, row, column,
                                                                    value):  # fmt: skip
    cfr = videos["cfr.mp4"]
    src, dest = tmp_path / "videos.csv", tmp_path / "out"
    src.write_text("location,start,end\n" + "".join(f"{cfr},{c}\n" for c in cells))
    with pytest.raises(SystemExit) as exc:
        main([str(src), "--dest", str(dest), "--workers", "1"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"row {row}, column {column!r}: {value} is not a time" in err
    assert "HH:MM:SS" in err and "empty" in err
    assert not dest.exists()  # checked before --dest was made


def test_parquet_cells_and_renamed_columns(tmp_path, videos, capsys):
    """Parquet durations and strings under --start-col/--end-col names; a bad cell in a
    renamed column is named by that column."""
    cfr = videos["cfr.mp4"]
    table = pa.table({"location": [cfr, cfr], "from": ["0:01", "1"],
                      "to": pa.array([2_500_000, None], pa.duration("us"))})  # fmt: skip
    pq.write_table(table, tmp_path / "t.parquet")
    dest = tmp_path / "out"
    columns = ["--start-col", "from", "--end-col", "to"]
    argv = ["--dest", str(dest), *columns, "--fps", "4", "--size", "32", "--workers", "1"]
    assert main([str(tmp_path / "t.parquet"), *argv]) == 0
    assert [(r["start"], r["end"]) for r in records(dest)] == [(1.0, 2.5), (1.0, None)]
    bad = table.set_column(1, "from", pa.array(["0:01", "soon"]))
    pq.write_table(bad, tmp_path / "bad.parquet")
    with pytest.raises(SystemExit):
        main([str(tmp_path / "bad.parquet"), "--dest", str(tmp_path / "bad"), *columns])
    assert "row 2, column 'from': 'soon' is not a time" in capsys.readouterr().err


def test_a_task_reads_its_window_by_the_same_rule():
    """stream_videos/read_videos take mappings from other code too (not only the CLI)."""
    task = Task.from_source(0, {"location": "v.mp4", "start": "0:00:01", "end": "12.5s"})
    assert (task.start, task.end) == (1.0, 12.5)
    task = Task.from_source(1, {"location": "v.mp4", "start": "1:02:03.5", "end": math.nan})
    assert (task.start, task.end) == (3723.5, None)
    assert Task.from_source(2, {"location": "v.mp4", "start": "", "end": None}).start is None
    with pytest.raises(ValueError, match=r"end: '1 minute' is not a time.*HH:MM:SS"):
        Task.from_source(3, {"location": "v.mp4", "start": 0, "end": "1 minute"})
