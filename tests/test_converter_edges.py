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
