"""video-convert on the awkward inputs real annotation files have: other encodings, garbled
headers, invalid windows, duplicate and colliding ids."""

import json

import pyarrow.parquet as pq
import pytest

from converters import ConvertError, convert
from converters.cli import main as convert_main

KINETICS = "label,youtube_id,time_start,time_end,split\n"


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return str(path)


def rows_of(table):
    return table.to_pylist()


@pytest.mark.parametrize(
    "encoding, bom",
    [
        ("utf-16", b""),  # Python's utf-16 codec writes its BOM itself
        ("utf-16-le", b""),
        ("utf-16-be", b""),
        ("utf-16-le", "\ufeff".encode("utf-16-le")),
        ("utf-16-be", "\ufeff".encode("utf-16-be")),
        ("utf-32", b""),
        ("utf-32-le", b""),
        ("utf-8-sig", b""),
        ("utf-8", "\ufeff".encode()),
    ],
)
def test_csv_and_line_files_decode_before_splitting_lines(tmp_path, encoding, bom):
    """UTF-16/32 hold 0x0A bytes inside characters (and ``\\n`` is two or four bytes): the
    bytes are decoded first, then split into lines."""
    text = (
        KINETICS + "café ☕,aaa,1,11,train\r\n"
        '"quoted, ਊ label",bbb,2,12,train\n'  # U+0A0A: two 0x0A bytes in UTF-16
        "Ċ label,ccc,3,13,train\n"  # U+010A: a 0x0A byte in UTF-16-LE
    )
    path = tmp_path / "train.csv"
    path.write_bytes(bom + text.encode(encoding))
    name = "utf-16" if encoding == "utf-16" and not bom else encoding
    rows = rows_of(convert("kinetics", [str(path)], encoding=name)[0])
    assert [r["label"] for r in rows] == ["café ☕", "quoted, ਊ label", "Ċ label"]
    assert [r["id"] for r in rows] == [
        "aaa_000001_000011",
        "bbb_000002_000012",
        "ccc_000003_000013",
    ]
    sta = tmp_path / "charades_sta_test.txt"
    sta.write_bytes(bom + "AO8RW 0.0 6.9##ਊ shelf\r\nY6R7T 1 2##Ċ door\n".encode(encoding))
    root = tmp_path / "videos"
    root.mkdir()
    for stem in ("AO8RW", "Y6R7T"):
        (root / f"{stem}.mp4").write_bytes(b"")
    rows = rows_of(convert("charades-sta", [str(sta)], encoding=name, video_root=str(root))[0])
    assert [r["caption"] for r in rows] == ["ਊ shelf", "Ċ door"]


def test_utf16_without_bom_big_endian_and_bad_bytes_name_the_line(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes((KINETICS + "a,aaa,1,11,train\nb,bbb,2,12,train\n").encode("utf-16-be"))
    rows = rows_of(convert("kinetics", [str(path)], encoding="utf-16")[0])
    assert [r["label"] for r in rows] == ["a", "b"]
    # A lone surrogate half on line 3 (utf-16-le): the error names that line.
    good = (KINETICS + "a,aaa,1,11,train\n").encode("utf-16-le")
    path.write_bytes(good + b"\x00\xd8" + "x,bbb,2,12,train\n".encode("utf-16-le"))
    with pytest.raises(ConvertError, match=r"train.csv:3: not valid utf-16-le"):
        convert("kinetics", [str(path)], encoding="utf-16-le")
    # A UTF-16 file read as UTF-8 says which encoding to pass.
    path.write_bytes((KINETICS + "a,aaa,1,11,train\n").encode("utf-16"))
    with pytest.raises(ConvertError, match=r"train.csv:1: .*--encoding utf-16"):
        convert("kinetics", [str(path)])
    jsonl = tmp_path / "highlight_val_release.jsonl"
    item = {"qid": 1, "query": "ਊ", "duration": 150, "vid": "abc_0.0_150.0"}
    jsonl.write_bytes((json.dumps(item, ensure_ascii=False) + "\n").encode("utf-16"))
    assert rows_of(convert("qvhighlights", [str(jsonl)], encoding="utf-16")[0])[0]["caption"] == "ਊ"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32-le", "utf-8-sig"])
def test_json_documents_and_streamed_json_in_other_encodings(tmp_path, encoding):
    data = {"v_ab\u0a0acd": {"duration": 10, "timestamps": [[0, 5]], "sentences": ["Ċ ਊ"]}}
    path = tmp_path / "val_1.json"
    path.write_bytes(json.dumps(data, ensure_ascii=False, indent=1).encode(encoding))
    name = "utf-16" if encoding == "utf-16-be" else encoding  # no BOM: the order is found
    rows = rows_of(convert("activitynet", [str(path)], encoding=name)[0])
    assert rows[0]["caption"] == "Ċ ਊ" and rows[0]["youtube_id"] == "ab\u0a0acd"
    captions = tmp_path / "caption.json"
    item = {"x\u0a0a": {"start": [0.0], "end": [1.5], "text": ["ਊ, Ċ"]}}
    captions.write_bytes(json.dumps(item, ensure_ascii=False).encode(encoding))
    rows = rows_of(convert("howto100m", [str(captions)], encoding=name)[0])
    assert rows[0]["caption"] == "ਊ, Ċ" and rows[0]["end"] == 1.5


def test_garbled_header_is_mended_or_named_never_a_silent_empty_column(tmp_path, capsys):
    """A UTF-8 byte-order mark read as Latin-1 and saved again as UTF-8 (``ï»¿``) glued to
    the first column's name: the mark is removed and said so; a column the converter reads
    but cannot find is named with the columns the file has."""
    body = "abseiling,aaa,4,14,train\nyoga,bbb,0,10,train\n"
    garbled = tmp_path / "train.csv"
    garbled.write_bytes(("\ufeff" + KINETICS + body).encode("utf-8").decode("cp1252").encode())
    table, report = convert("kinetics", [str(garbled)])
    assert [r["caption"] for r in rows_of(table)] == ["abseiling", "yoga"]
    assert any("byte-order mark" in n and "train.csv" in n for n in report.notes)
    # Quoted names after the garbled mark, and a mark read with --encoding latin-1.
    quoted = tmp_path / "val.csv"
    quoted.write_bytes(b"\xef\xbb\xbf" + b'"label","youtube_id",time_start,time_end\nx,a,1,2\n')
    table, report = convert("kinetics", [str(quoted)], encoding="latin-1")
    assert rows_of(table)[0]["caption"] == "x" and report.notes
    # A name that is simply not there: a warning naming it and the columns found.
    typo = write(tmp_path / "k.csv", "lable,youtube_id,time_start,time_end,split\n" + body)
    out = tmp_path / "out.parquet"
    assert convert_main(["kinetics", typo, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "k.csv: no column label" in err and "lable, youtube_id, time_start" in err
    assert pq.read_table(out).column("caption").null_count == 2
    # Required columns stay an error.
    assert convert_main(["webvid", typo, "--out", str(out)]) == 2
    assert "k.csv:1: no column videoid, contentUrl, name" in capsys.readouterr().err


def test_a_caption_column_empty_in_every_row_is_said(tmp_path, capsys):
    lines = [{"YoutubeID": "abc", "Start_timestamp": "00:00:01", "End_timestamp": "00:00:02",
              "caption": "lower-case key: not InternVid's"}]  # fmt: skip
    path = write(tmp_path / "part.jsonl", "\n".join(json.dumps(x) for x in lines))
    out = tmp_path / "out.jsonl"
    assert convert_main(["internvid", path, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "none of the 1 rows has a caption" in err


def charades_root(tmp_path, *stems):
    root = tmp_path / "videos"
    root.mkdir(exist_ok=True)
    for stem in stems:
        (root / f"{stem}.mp4").write_bytes(b"")
    return str(root)


def test_charades_sta_leaves_out_moments_that_end_before_they_start(tmp_path, capsys):
    """The real train file has three such lines in 12,408 (``LEOL6 8.0 7.0##...``)."""
    lines = [f"AO8RW {i}.0 {i + 5}.0##person number {i}.\n" for i in range(10)]
    lines[3] = "LEOL6 8.0 7.0##person opens a door.\n"
    lines[6] = "LEOL6 3.2 3.2##person sits.\r\n"
    lines[8] = "LEOL6 1.0 nan##person stands.\n"
    path = write(tmp_path / "charades_sta_train.txt", "".join(lines))
    root = charades_root(tmp_path, "AO8RW", "LEOL6")
    table, report = convert("charades-sta", [path], video_root=root)
    rows = rows_of(table)
    assert len(rows) == 7 and [r["caption"] for r in rows][3] == "person number 4."
    [note] = [n for n in report.notes if "left out" in n]
    assert note.startswith("3 lines with an invalid window left out")
    assert f"{path}:4: the window ends before it starts (8 - 7)" in note
    assert f"{path}:7: the window is empty" in note and f"{path}:9: end 'nan'" in note
    out = tmp_path / "out.parquet"
    args = ["charades-sta", path, "--video-root", root, "--out", str(out)]
    assert convert_main(args) == 0
    assert "3 lines with an invalid window left out" in capsys.readouterr().err
    assert pq.read_table(out).num_rows == 7
    assert convert_main([*args, "--strict"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:4: the window ends before it starts (8 - 7) (--strict" in err
    # Only bad lines: nothing to write is an error, not an empty table.
    bad = write(tmp_path / "charades_sta_test.txt", "LEOL6 8.0 7.0##x\n")
    with pytest.raises(ValueError, match=r"no rows: all 1 lines were left out .*test.txt:1"):
        convert("charades-sta", [bad], video_root=root)


def _jsonl(items):
    return "\n".join(json.dumps(x) for x in items) + "\n"


# For every converter with windows: (file name, text with one good entry and then one whose
# window is invalid, the good row's id, the bad entry's line when the format has lines).
BAD_WINDOWS = {
    "kinetics": ("train.csv", KINETICS + "a,aaa,1,11,train\nb,bbb,20,10,train\n",
                 "aaa_000001_000011", 3),
    "charades-sta": ("charades_sta_train.txt", "AO8RW 1 2##a\nAO8RW 5 -1##b\n", "AO8RW_0", 2),
    "activitynet": ("train.json", json.dumps(
        {"v_abc": {"duration": 20, "timestamps": [[0, 5], [9, 7]], "sentences": ["a", "b"]}},
        indent=1), "abc_0", 9),
    "didemo": ("train_data.json", json.dumps(
        [{"annotation_id": 1, "video": "a.mov", "times": [[1, 2]], "dl_link": "https://a"},
         {"annotation_id": 2, "video": "b.mov", "times": [[3, 1]], "dl_link": "https://b"}],
        indent=1), "1", 13),
    "hdvila": ("hdvila_part0.jsonl", _jsonl(
        [{"video_id": "v1", "clip": [{"clip_id": "v1.0.mp4", "span": ["0:00:01", "0:00:02"]}]},
         {"video_id": "v2", "clip": [{"clip_id": "v2.0.mp4", "span": ["0:00:05", "0:00:02"]}]}]),
        "v1.0", 2),
    "howto100m": ("caption.json", json.dumps(
        {"vid": {"start": [0, 9], "end": [4, 3], "text": ["a", "b"]}}), "vid_0", None),
    "internvid": ("InternVid-10M-FLT.jsonl", _jsonl(
        [{"YoutubeID": "a", "Start_timestamp": "00:00:01", "End_timestamp": "00:00:02"},
         {"YoutubeID": "b", "Start_timestamp": "00:00:09", "End_timestamp": "00:00:02"}]),
        "a_1.000_2.000", 2),
    "msrvtt": ("train_videodatainfo.json", json.dumps({"videos": [
        {"video_id": "video0", "url": "https://www.youtube.com/watch?v=abcdefghijk",
         "start time": 1, "end time": 5, "split": "train"},
        {"video_id": "video1", "url": "https://www.youtube.com/watch?v=abcdefghijl",
         "start time": 9, "end time": 5, "split": "train"}], "sentences": []}, indent=1),
        "video0", 10),
    "panda70m": ("panda70m_validation.csv", "videoID,url,timestamp,caption,matching_score\n"
                 "v1,u,\"[['0:00:01.000', '0:00:02.000'], ['0:00:09.000', '0:00:02.000']]\","
                 "\"['a', 'b']\",\"[0.5, 0.5]\"\n", "v1_0", 2),
    "qvhighlights": ("highlight_val_release.jsonl", _jsonl(
        [{"qid": 1, "query": "a", "vid": "abc_0.0_150.0"},
         {"qid": 2, "query": "b", "vid": "abc_360.0_210.0"}]), "1", 2),
    "vatex": ("vatex_training_v1.0.json", json.dumps(
        [{"videoID": "abc_000001_000011", "enCap": ["a"]},
         {"videoID": "abd_000020_000010", "enCap": ["b"]}], indent=1), "abc_000001_000011", 8),
    "youcook2": ("youcookii_annotations_trainval.json", json.dumps({"database": {"vid": {
        "subset": "training", "annotations": [{"segment": [1, 5], "id": 0, "sentence": "a"},
                                              {"segment": [9, 5], "id": 1, "sentence": "b"}]}}},
        indent=1), "vid_0", 14),
}  # fmt: skip


@pytest.mark.parametrize("dataset", sorted(BAD_WINDOWS))
def test_every_converter_leaves_out_invalid_windows_unless_strict(tmp_path, dataset, capsys):
    name, text, good_id, line = BAD_WINDOWS[dataset]
    path = write(tmp_path / name, text)
    root = charades_root(tmp_path, "AO8RW")
    extra = ["--video-root", root] if dataset == "charades-sta" else []
    out = tmp_path / "out.jsonl"
    assert convert_main([dataset, path, "--out", str(out), *extra]) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    written = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in written] == [good_id]
    where = f"{path}:{line}" if line else path  # caption.json is one line of gigabytes
    assert f"1 lines with an invalid window left out ({where}: " in err
    assert convert_main([dataset, path, "--out", str(out), "--strict", *extra]) == 2
    assert f"video-convert: error: {where}: " in capsys.readouterr().err


def test_kinetics_ids_are_unique_and_name_their_own_clip(tmp_path, capsys):
    """Two identical rows, a 10.2-20.7 window next to a 10-20 one, a negative start: every id
    is unique, parses back to its window, and --video-root never gives a row another clip's
    file."""
    from converters.core import split_clip_key

    text = (
        KINETICS + "abseiling,abcdefghijk,10,20,train\n"
        "abseiling,abcdefghijk,10,20,train\n"  # the same row again
        "yoga,abcdefghijk,10.2,20.7,train\n"  # the downloader would name it _000010_000020
        "yoga,abcdefghijk,-5,5,train\n"
        "dancing,abcdefghijk,10,20,train\n"  # the same window with another label
    )
    path = write(tmp_path / "train.csv", text)
    root = tmp_path / "videos"
    (root / "abseiling").mkdir(parents=True)
    (root / "abseiling" / "abcdefghijk_000010_000020.mp4").write_bytes(b"")
    table, report = convert("kinetics", [path], video_root=str(root))
    rows = rows_of(table)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == 3, ids
    assert ids[0] == "abcdefghijk_000010_000020"
    assert rows[0]["location"].endswith("abcdefghijk_000010_000020.mp4")
    fractional = rows[1]
    assert fractional["label"] == "yoga" and fractional["id"] != ids[0]
    assert split_clip_key(fractional["id"]) == ("abcdefghijk", 10.2, 20.7)
    assert fractional["location"] == "https://www.youtube.com/watch?v=abcdefghijk"
    assert (fractional["start"], fractional["end"]) == (10.2, 20.7)
    assert rows[2]["label"] == "dancing" and rows[2]["id"] != ids[0]
    notes = "\n".join(report.notes)
    assert f"1 exact duplicate rows left out ({path}:3: repeats {path}:2)" in notes
    assert f"{path}:5: time_start '-5' is not a time" in notes
    assert f"{path}:6: id abcdefghijk_000010_000020 renamed {rows[2]['id']}" in notes
    assert f"the id of {path}:2" in notes
    # --strict refuses the distinct rows that share an id, naming both lines.
    no_negative = write(tmp_path / "k.csv", text.replace("yoga,abcdefghijk,-5,5,train\n", ""))
    with pytest.raises(ValueError, match=rf"{no_negative}:5: .*abcdefghijk_000010_000020.*"
                       rf"{no_negative}:2"):  # fmt: skip
        convert("kinetics", [no_negative], strict=True)


def test_ids_stay_unique_across_files_in_every_converter(tmp_path, capsys):
    """ActivityNet's val_1 and val_2 annotate the same videos (``<id>_0`` from both); the same
    VATEX file given twice is all duplicates; a VATEX id with two caption sets is renamed."""
    video = {"duration": 20, "timestamps": [[0, 5]], "sentences": ["first annotator"]}
    val_1 = write(tmp_path / "val_1.json", json.dumps({"v_abc": video}))
    video = {"duration": 20, "timestamps": [[1, 6]], "sentences": ["second annotator"]}
    val_2 = write(tmp_path / "val_2.json", json.dumps({"v_abc": video}))
    out = tmp_path / "out.jsonl"
    assert convert_main(["activitynet", val_1, val_2, "--out", str(out)]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["caption"] for r in rows] == ["first annotator", "second annotator"]
    assert len({r["id"] for r in rows}) == 2 and rows[0]["id"] == "abc_0"
    err = capsys.readouterr().err
    assert f"1 rows renamed: another row has their id ({val_2}:1: id abc_0 renamed" in err
    items = [{"videoID": "abc_000001_000011", "enCap": ["a"]},
             {"videoID": "abc_000001_000011", "enCap": ["b"]}]  # fmt: skip
    vatex = write(tmp_path / "vatex_training_v1.0.json", json.dumps(items, indent=1))
    assert convert_main(["vatex", vatex, vatex, "--out", str(out)]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["caption"] for r in rows] == ["a", "b"] and len({r["id"] for r in rows}) == 2
    err = capsys.readouterr().err
    assert f"2 exact duplicate rows left out ({vatex}:2: repeats {vatex}:2; " in err
    assert convert_main(["vatex", vatex, "--out", str(out), "--strict"]) == 2
    err = capsys.readouterr().err
    assert f"{vatex}:8: id abc_000001_000011 is also the id of {vatex}:2, a different row" in err


def test_id_ledger_remembers_ids_past_its_exact_window(tmp_path, monkeypatch):
    """Past ``young`` ids the ledger keeps 64-bit hashes in sorted runs, memory-mapped past
    ``MEMORY_RUN``: repeats and collisions far apart are still found, and the scratch files
    are removed at the end."""
    import tempfile

    from converters import ids
    from converters.core import Report

    monkeypatch.setattr(ids, "MEMORY_RUN", 64)
    monkeypatch.setattr(ids, "BATCH", 7)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    rows = [{"id": f"v{i}", "caption": "c", "_where": f"f:{i}"} for i in range(1000)]
    rows += [{"id": f"v{i}", "caption": "c", "_where": f"g:{i}"} for i in range(0, 1000, 10)]
    rows += [{"id": f"v{i}", "caption": "other", "_where": f"h:{i}"} for i in range(0, 1000, 100)]
    rows += [{"id": "v0~2", "caption": "taken", "_where": "h:x"}]
    report = Report()
    ledger = ids.IdLedger(report, young=20)
    out = []
    for row in ledger.unique(iter([dict(r) for r in rows])):
        out.append(row)
        if len(out) == 1000:
            assert list(tmp_path.glob("video-convert-ids-*/*.u64"))  # memory-mapped runs
    assert len(out) == 1000 + 10 + 1 and len({r["id"] for r in out}) == len(out)
    assert [r["id"] for r in out[1000:1003]] == ["v0~2", "v100~2", "v200~2"]
    assert out[-1]["id"] == "v0~2~2"  # the file's own "v0~2" came after the rename
    report.summarise()
    assert (
        "100 exact duplicate rows left out (g:0: repeats an earlier row; g:10: " in report.notes[0]
    )
    assert report.notes[1].startswith("11 rows renamed: another row has their id")
    assert not list(tmp_path.glob("video-convert-ids-*"))


# What the property tests (test_converter_properties.py) found, kept as plain examples:
# (dataset, {file: bytes}, extra arguments, exit code, what stderr says).
FOUND = [
    ("charades-sta", {"charades_sta_train.txt": b"\xef\xbb\xbfAO"}, ["--encoding", "utf-16"],
     2, "pass --encoding utf-8-sig"),  # was "UTF-16 stream does not start with BOM", no file
    ("msrvtt", {"MSRVTT_JSFUSION_test.csv": b",key,vid_key,video_id,sentence\n0,,,0,\r0,,,1,x\n"},
     [], 2, "MSRVTT_JSFUSION_test.csv:2: row 0 has no location"),  # a lone CR ends a csv row
    ("openvid", {"OpenVid-1M.csv": b"video,caption,frame\na.mp4,x,inf\n"}, [], 2,
     "OpenVid-1M.csv:2: a.mp4: frame 'inf' is not a number"),  # was OverflowError
    ("hdvila", {"hdvila_part0.jsonl": b'{"video_id": "v", "clip": [{"clip_id": ".mp4", "span":'
                                      b' ["0:00:00", "0:00:01"]}]}\n'}, [], 0, "1 rows"),
    ("msrvtt", {"videodatainfo.json": b'{"videos": [{"video_id": "a", "url": "u", "category": 1},'
                                      b'\n{"video_id": "b", "url": "u", "category": ""}]}'}, [], 2,
     "videodatainfo.json:2: b: category '' is not a number"),  # was a pyarrow type error
    ("ssv2", {"something-something-v2-labels.json": b'{"a": "0",\n "b": "x"}'}, [], 2,
     "something-something-v2-labels.json:2: a labels file maps"),
    ("webvid", {"results_2M_val.csv": "videoid,contentUrl,name\n1,u,x\n".encode("utf-32")},
     ["--encoding", "utf-16"], 2, "NUL characters say the file is UTF-16 or UTF-32"),
]  # fmt: skip


@pytest.mark.parametrize("dataset, files, extra, code, says", FOUND)
def test_what_the_property_tests_found(tmp_path, capsys, dataset, files, extra, code, says):
    paths = []
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    root = charades_root(tmp_path, "x")
    args = [dataset, *paths, "--out", str(tmp_path / "out.jsonl"), "--video-root", root, *extra]
    assert convert_main(args) == code
    assert says in capsys.readouterr().err


def test_a_folder_or_unreadable_path_is_an_error_not_a_traceback(tmp_path, capsys):
    folder = tmp_path / "train.csv"
    folder.mkdir()
    assert convert_main(["kinetics", str(folder), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert f"video-convert: error: [Errno 21] Is a directory: '{folder}'" in capsys.readouterr().err
