"""clip-video-mix on real converter output (``video-convert`` on annotation files in each
dataset's own format): every cross-dataset duplicate and every evaluation row is found and
nothing else is removed, against a computation from the annotations themselves."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from clip_video_encode.mix.cli import main as mix_main
from converters.cli import main as convert_main

ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"


def youtube_ids(n, seed=0):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list(ALPHABET), 11)) for _ in range(n)]


IDS = youtube_ids(60)


def clips(rng, ids, per_video=1):
    """(youtube id, start, end) with 10 s windows on a 1 s grid."""
    out = []
    for i in ids:
        for _ in range(per_video):
            start = int(rng.integers(0, 50))
            out.append((i, start, start + 10))
    return out


@pytest.fixture(scope="module")
def annotations(tmp_path_factory):
    """Annotation files of seven datasets that share videos the way the real ones do, and
    the clips each holds: ``{name: (table path, [(youtube id, start, end)])}``."""
    root = tmp_path_factory.mktemp("mix_tables")
    rng = np.random.default_rng(1)
    k400_val = clips(rng, IDS[0:20])
    # Kinetics-600 val: 8 clips of K400 val (same windows), 4 of its videos at other,
    # non-overlapping windows, 6 of its own; a video with two clips (two labels).
    k600_val = k400_val[:8] + [(i, s + 30, e + 30) for i, s, e in k400_val[8:12]]
    k600_val += clips(rng, IDS[20:26]) + [(IDS[20], 0, 10), (IDS[20], 5, 15)]
    k600_test = clips(rng, IDS[26:30]) + [k400_val[12]]
    vatex_val = k600_val[:5] + k600_val[14:16]  # VATEX val clips are Kinetics-600 val clips
    anet = {IDS[2]: [(0.0, 12.5), (11.0, 40.0)], IDS[40]: [(0.0, 5.0)], IDS[26]: [(3.0, 8.0)]}
    msrvtt = {f"video{j}": (IDS[41 + j], 1.0, 11.0) for j in range(3)}
    youcook = {IDS[41]: [(20.0, 30.0)], IDS[50]: [(0.0, 10.0)]}

    def kinetics(name, rows, split):
        path = root / f"{name}.csv"
        lines = [f"label {j % 3},{i},{s},{e},{split}\n" for j, (i, s, e) in enumerate(rows)]
        path.write_text("label,youtube_id,time_start,time_end,split\n" + "".join(lines))
        return path

    files = {
        "k400_val": ("kinetics", kinetics("k400_validate", k400_val, "validate")),
        "k600_val": ("kinetics", kinetics("k600_validate", k600_val, "validate")),
        "k600_test": ("kinetics", kinetics("k600_test", k600_test, "test")),
    }
    path = root / "vatex_validation_v1.0.json"
    items = [{"videoID": f"{i}_{s:06d}_{e:06d}", "enCap": [f"a clip {j}"], "chCap": []}
             for j, (i, s, e) in enumerate(vatex_val)]  # fmt: skip
    path.write_text(json.dumps(items))
    files["vatex_val"] = ("vatex", path)
    path = root / "val_1.json"
    path.write_text(json.dumps({f"v_{i}": {"duration": 60.0, "timestamps": [list(w) for w in ws],
                                           "sentences": [f"s{j}" for j in range(len(ws))]}
                                for i, ws in anet.items()}))  # fmt: skip
    files["anet_val"] = ("activitynet", path)
    path = root / "test_videodatainfo.json"
    path.write_text(json.dumps({
        "videos": [{"video_id": v, "url": f"https://www.youtube.com/watch?v={i}",
                    "start time": s, "end time": e, "split": "test", "category": 1}
                   for v, (i, s, e) in msrvtt.items()],
        "sentences": [{"video_id": v, "caption": "x"} for v in msrvtt]}))  # fmt: skip
    files["msrvtt_test"] = ("msrvtt", path)
    path = root / "youcookii_annotations_trainval.json"
    path.write_text(json.dumps({"database": {i: {
        "subset": "training", "duration": 100, "video_url": f"https://www.youtube.com/watch?v={i}",
        "annotations": [{"segment": list(w), "id": j, "sentence": "cook"}
                        for j, w in enumerate(ws)]} for i, ws in youcook.items()}}))  # fmt: skip
    files["youcook_train"] = ("youcook2", path)
    out = {}
    for name, (dataset, source) in files.items():
        table = root / f"{name}.parquet"
        assert convert_main([dataset, str(source), "--out", str(table)]) == 0
        out[name] = str(table)
    windows = {
        "k400_val": k400_val, "k600_val": k600_val, "k600_test": k600_test,
        "vatex_val": vatex_val,
        "anet_val": [(i, s, e) for i, ws in anet.items() for s, e in ws],
        "msrvtt_test": list(msrvtt.values()),
        "youcook_train": [(i, s, e) for i, ws in youcook.items() for s, e in ws],
    }  # fmt: skip
    return {name: (out[name], windows[name]) for name in out}


def expected_removals(inputs, excludes, level="video"):
    """Straight from the clip lists: per input, the rows removed as excluded and as the same
    clip as a kept row of an earlier input (any overlap), in plain loops."""
    evaluation = [c for clips_ in excludes for c in clips_]
    kept, out = [], []
    for index, rows in enumerate(inputs):
        excluded = same = 0
        mine = []
        for i, s, e in rows:
            same_video = any(i == j for j, _, _ in evaluation)
            same_window = any(i == j and s < f and t < e for j, t, f in evaluation)
            if same_video if level == "video" else same_window:
                excluded += 1
            elif any(g != index and i == j and s < f and t < e for g, j, t, f in kept):
                same += 1
            else:
                mine.append((index, i, s, e))
        kept += mine
        out.append((excluded, same, len(mine)))
    return out


def removed(report):
    return [(e["removed"]["excluded_source"], e["removed"]["same_source"], e["kept"])
            for e in report["inputs"]]  # fmt: skip


@pytest.mark.parametrize("level", ["video", "window"])
def test_kinetics_vatex_activitynet_youcook_against_kinetics_400_and_msrvtt(
    annotations, tmp_path, level
):
    names = ["k600_val", "vatex_val", "k600_test", "anet_val", "youcook_train"]
    evaluation = ["k400_val", "msrvtt_test"]
    dest = tmp_path / "mix"
    argv = [*(annotations[n][0] for n in names), "--dest", str(dest), "--table-only",
            "--exclude-level", level, "--quiet"]  # fmt: skip
    for e in evaluation:
        argv += ["--exclude", annotations[e][0]]
    assert mix_main(argv) == 0
    report = json.loads((dest / "mix_report.json").read_text())
    expected = expected_removals([annotations[n][1] for n in names],
                                 [annotations[e][1] for e in evaluation], level)  # fmt: skip
    assert removed(report) == expected
    # The leaks of the issue are there: K600 val clips of K400 val videos, VATEX's copies of
    # K600 val, ActivityNet's video of K400 val, YouCook2's video of MSR-VTT.
    assert expected[0][0] > 0 and expected[1][1] > 0 and expected[3][0] > 0
    assert expected[4][0] == (1 if level == "video" else 0)  # its window is elsewhere
    table = pq.read_table(dest / "mix.parquet").to_pylist()
    assert len(table) == sum(k for _, _, k in expected)
    assert table[0]["source_dataset"] == annotations["k600_val"][0]
    assert all(r["source_id"].startswith("youtube:") for r in table)
    kept_ids = {r["source_id"].removeprefix("youtube:") for r in table}
    if level == "video":  # no video of an evaluation set is left
        assert not kept_ids & {i for e in evaluation for i, _, _ in annotations[e][1]}
    pairs = pq.read_table(dest / "mix_pairs.parquet").to_pylist()
    assert len(pairs) == sum(a + b for a, b, _ in expected)
    for pair in pairs:
        assert pair["source"] == f"youtube:{pair['id_a'][:11]}"
        if pair["reason"] == "same_source":
            assert pair["dataset_b"] in {annotations[n][0] for n in names}
            assert pair["start_a"] < pair["end_b"] and pair["start_b"] < pair["end_a"]
        else:
            assert pair["dataset_b"] in {annotations[e][0] for e in evaluation}


def test_the_clean_table_encodes_and_the_cap_and_rate_are_deterministic(annotations, tmp_path):
    k600, vatex = annotations["k600_val"][0], annotations["vatex_val"][0]
    runs = []
    for attempt in range(2):
        dest = tmp_path / f"mix{attempt}"
        assert mix_main([k600, vatex, "--dest", str(dest), "--table-only", "--weights",
                         "10,0.5", "--seed", "3", "--quiet"]) == 0  # fmt: skip
        runs.append(pq.read_table(dest / "mix.parquet"))
    assert runs[0].equals(runs[1])
    report = json.loads((tmp_path / "mix0" / "mix_report.json").read_text())
    assert report["inputs"][0]["drawn"] == 10
    assert 0 < report["inputs"][1]["drawn"] < len(annotations["vatex_val"][1])
    other = tmp_path / "other_seed"
    assert mix_main([k600, vatex, "--dest", str(other), "--table-only", "--weights", "10,0.5",
                     "--seed", "4", "--quiet"]) == 0  # fmt: skip
    assert not pq.read_table(other / "mix.parquet").equals(runs[0])


def test_dry_run_writes_only_its_report(annotations, tmp_path, capsys):
    dest = tmp_path / "mix"
    names = [annotations[n][0] for n in ("k600_val", "vatex_val", "k400_val")]
    assert mix_main([*names[:2], "--dest", str(dest), "--dry-run", "--exclude", names[2]]) == 0
    assert sorted(p.name for p in dest.iterdir()) == ["_dry_run"]
    assert sorted(p.name for p in (dest / "_dry_run").iterdir()) == [
        "mix_pairs.parquet", "mix_report.json"]  # fmt: skip
    out = capsys.readouterr().out
    assert "excl.src" in out and "total" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["{k600}", "{k600}"], "given twice"),
        (["{k600}", "--exclude", "{k600}"], "given twice"),
        (["{k600}", "--exclude", "{copy}"], "same table as an --exclude"),
        (["{k600}", "--weights", "0.5,0.5"], "2 values for 1 inputs"),
        (["{k600}", "--weights", "2.5"], "a rate in \\(0, 1\\]"),
        (["{k600}", "--by", "content", "--table-only"], "give at least one encoded dataset"),
        (["{k600}"], "is a table: a mixed dataset is made of encoded datasets"),
        (["{tmp}/nothing_here"], "no such folder"),
        (["{tmp}/missing.parquet"], "no such table"),
        (
            ["{k600}", "--exclude-split", "val", "--exclude", "{plain}", "--table-only"],
            "plain.csv has no split column",
        ),
        (["{k600_dir}", "--dest", "{k600_dir}/inside"], "is \\(inside\\) the input"),
    ],
)
def test_refusals_say_what_to_do(annotations, tmp_path, capsys, argv, message):
    import shutil

    copy = tmp_path / "copy.parquet"
    shutil.copy(annotations["k600_val"][0], copy)
    (tmp_path / "plain.csv").write_text("location\nhttps://example.com/a.mp4\n")
    k600_dir = tmp_path / "k600_dataset"
    (k600_dir).mkdir()
    (k600_dir / "run.json").write_text("{}")
    values = {"k600": annotations["k600_val"][0], "copy": str(copy), "tmp": str(tmp_path),
              "plain": str(tmp_path / "plain.csv"), "k600_dir": str(k600_dir)}  # fmt: skip
    argv = [a.format(**values) for a in argv]
    if "--dest" not in argv:
        argv += ["--dest", str(tmp_path / "out")]
    code = mix_main([*argv, "--quiet"])
    assert code == 2
    assert __import__("re").search(message, capsys.readouterr().err)


def test_keep_longest_and_iou(tmp_path):
    """One video in two tables: a short clip first, a long window of it second. --keep first
    keeps the short one, longest the long one; at IoU 0.5 they are not one clip (IoU 0.2)."""
    yt = "abc_DEF-123"
    first = tmp_path / "first.csv"
    first.write_text(f"id,location,start,end\nshort,https://youtu.be/{yt},10,14\n")
    second = tmp_path / "second.csv"
    second.write_text(f"id,location,start,end\nlong,https://www.youtube.com/watch?v={yt},0,20\n"
                      "other,https://youtu.be/zzzzzzzzzzz,0,20\n")  # fmt: skip

    def kept(*extra):
        dest = tmp_path / "-".join(extra or ("default",))
        assert mix_main([str(first), str(second), "--dest", str(dest), "--table-only",
                         "--quiet", *extra]) == 0  # fmt: skip
        return pq.read_table(dest / "mix.parquet").column("id").to_pylist()

    assert kept() == ["short", "other"]
    assert kept("--keep", "longest") == ["long", "other"]
    assert kept("--iou", "0.5") == ["short", "long", "other"]
    assert kept("--iou", "0.15", "--keep", "longest") == ["long", "other"]


def test_times_that_are_not_numbers_are_noted(tmp_path, capsys):
    table = tmp_path / "clock.csv"
    table.write_text("id,location,start,end\na,https://youtu.be/abcdefghijk,0:00:10,0:00:20\n"
                     "b,https://youtu.be/bbcdefghijk,,\n")  # fmt: skip
    assert mix_main([str(table), "--dest", str(tmp_path / "out"), "--table-only"]) == 0
    out = capsys.readouterr().out
    assert "1 values of start are not numbers" in out and "those windows are open" in out
