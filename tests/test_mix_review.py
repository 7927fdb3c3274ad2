"""Review of clip-video-mix (issue 26): defects found by a hostile user, each a failing test.

Tables come from the real converter (``video-convert kinetics`` on csvs in Kinetics' official
format ``label,youtube_id,time_start,time_end,split``)."""

import json
import shutil

import pyarrow.parquet as pq
import pytest

from clip_video_encode.mix.cli import main as mix_main
from converters.cli import main as convert_main

TRAIN, EVAL = "trainclip01", "evalclip001"  # YouTube ids: 11 characters


def kinetics(tmp_path, name, rows, split):
    csv = tmp_path / f"{name}.csv"
    csv.write_text("label,youtube_id,time_start,time_end,split\n"
                   + "".join(f"a,{i},{s},{e},{split}\n" for i, s, e in rows))  # fmt: skip
    out = tmp_path / f"{name}.parquet"
    assert convert_main(["kinetics", str(csv), "--out", str(out)]) == 0
    return str(out)


@pytest.fixture
def leaking(tmp_path):
    """A Kinetics-600 train clip [10, 20) on a video whose Kinetics-400 val clip is [19, 29):
    they share one second (IoU 1/19), plus a clean train clip."""
    train = kinetics(tmp_path, "k600_train", [(TRAIN, 10, 20), ("cleanclip01", 0, 10)], "train")
    k400 = kinetics(tmp_path, "k400_val", [(TRAIN, 19, 29), (EVAL, 0, 10)], "validate")
    return train, k400


def kept_ids(dest):
    return sorted(pq.read_table(f"{dest}/mix.parquet").column("id").to_pylist())


def test_iou_does_not_weaken_window_level_exclusion(leaking, tmp_path):
    """docs/mix.md: ``--exclude-level window`` removes the rows whose window *meets* an
    evaluation window; ``--iou`` is for same-source duplicates (step 3). Today --iou 0.5 is
    also applied to the exclusion, so a training clip that overlaps an evaluation clip (here
    by a second) stays in the mix: evaluation data leaks because of a deduplication option."""
    train, k400 = leaking
    args = [train, "--exclude", k400, "--exclude-level", "window", "--table-only", "--quiet"]
    assert mix_main([*args, "--dest", str(tmp_path / "any")]) == 0
    assert kept_ids(tmp_path / "any") == ["cleanclip01_000000_000010"]
    assert mix_main([*args, "--iou", "0.5", "--dest", str(tmp_path / "iou")]) == 0
    assert kept_ids(tmp_path / "iou") == ["cleanclip01_000000_000010"]  # today: both kept


def test_an_exclude_split_no_evaluation_row_has_is_refused(leaking, tmp_path, capsys):
    """``--exclude-split vall`` (a typo; the table's split is ``val``) leaves the evaluation
    set with no rows: today the mix succeeds (exit 0), removes nothing, and says nothing in
    the terminal or the report's notes, so the user trains on the evaluation videos believing
    the mix decontaminated. A decontamination that can remove nothing should be refused (exit
    2) naming the split asked for and the splits the evaluation set has."""
    train, k400 = leaking
    dest = tmp_path / "typo"
    rc = mix_main([train, "--exclude", k400, "--exclude-split", "vall", "--table-only",
                   "--dest", str(dest)])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2, f"exit {rc}; kept {kept_ids(dest) if (dest / 'mix.parquet').exists() else []}"
    assert "vall" in err and "val" in err.replace("vall", "")


def test_a_local_table_whose_name_holds_double_colon_is_read(leaking, tmp_path, monkeypatch):
    """A local table named ``va::tex.parquet`` (a legal file name) crashes the CLI with a
    traceback (fsspec reads ``::`` as URL chaining: "ValueError: Protocol not known: va"),
    and the same file by absolute path is reported as "no such table" though it exists.
    Bad input never crashes a run; an existing local file is that file."""
    train, _ = leaking
    shutil.copy(train, tmp_path / "va::tex.parquet")
    monkeypatch.chdir(tmp_path)
    for name in ("va::tex.parquet", str(tmp_path / "va::tex.parquet")):
        dest = tmp_path / f"out{len(name)}"
        assert mix_main([name, "--table-only", "--quiet", "--dest", str(dest)]) == 0, name
        assert len(kept_ids(dest)) == 2
        report = json.loads((dest / "mix_report.json").read_text())
        assert report["inputs"][0]["kept"] == 2
