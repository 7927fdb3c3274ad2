"""video-convert: each dataset's exact annotation format, its edge cases, and the way to an
embedding dataset."""

import json

import pyarrow.parquet as pq
import pytest

from converters import ConvertError, convert, converters
from converters.cli import main as convert_main
from converters.core import iso_duration, split_clip_key


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return str(path)


def rows_of(table):
    return table.to_pylist()


def test_registry_lists_every_dataset(capsys):
    assert set(converters()) == {
        "activitynet", "howto100m", "kinetics", "msrvtt", "vatex", "webvid", "youcook2",
        "panda70m", "internvid", "hdvila", "openvid", "charades-sta", "qvhighlights", "didemo",
        "ssv2",
    }  # fmt: skip
    assert convert_main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "Kinetics 400/600/700/700-2020" in out and "files:" in out


def test_kinetics_labels_windows_splits(tmp_path):
    # 400: is_cc column, quoted labels with commas/parentheses/apostrophes; one video with two
    # clips of other labels and overlapping windows.
    k400 = write(
        tmp_path / "train.csv",
        "label,youtube_id,time_start,time_end,split,is_cc\n"
        '"abseiling",--33Lscn6sk,4,14,train,0\n'
        '"passing American football (in game)",abc_def-123,10,20,train,1\n'
        '"massaging person\'s head",abc_def-123,15,25,train,0\n'
        '"Tying Bow Tie, fast",x1,0,10,train,0\n',
    )
    # 700: the validation split is written "validate"; test files have no label at all.
    k700 = write(
        tmp_path / "validate.csv",
        "label,youtube_id,time_start,time_end,split\nwaxing legs,vid00000001,30,40,validate\n",
    )
    test = write(tmp_path / "test.csv", "youtube_id,time_start,time_end,split\ntt,1,11,test\n")
    table, _ = convert("kinetics", [k400, k700, test])
    rows = rows_of(table)
    assert [r["id"] for r in rows] == [
        "--33Lscn6sk_000004_000014",
        "abc_def-123_000010_000020",
        "abc_def-123_000015_000025",
        "x1_000000_000010",
        "vid00000001_000030_000040",
        "tt_000001_000011",
    ]
    assert rows[1]["label"] == "passing American football (in game)"
    assert rows[2]["caption"] == "massaging person's head"
    assert rows[3]["label"] == "Tying Bow Tie, fast"
    assert rows[1]["location"] == "https://www.youtube.com/watch?v=abc_def-123"
    assert (rows[2]["start"], rows[2]["end"]) == (15.0, 25.0)
    assert [r["split"] for r in rows] == ["train"] * 4 + ["val", "test"]
    assert rows[1]["is_cc"] is True and rows[5]["label"] is None
    only_val, report = convert("kinetics", [k400, k700], split="validation")
    assert [r["id"] for r in rows_of(only_val)] == ["vid00000001_000030_000040"]
    assert "kept 1 of 5 rows" in report.notes[0]


def test_kinetics_video_root_finds_clips_in_label_folders(tmp_path):
    annotations = write(
        tmp_path / "train.csv",
        "label,youtube_id,time_start,time_end,split\n"
        "abseiling,aaa,4,14,train\nabseiling,bbb,0,10,train\nyoga,ccc,5,15,train\n",
    )
    root = tmp_path / "videos"
    (root / "train" / "abseiling").mkdir(parents=True)
    (root / "train" / "abseiling" / "aaa_000004_000014.mp4").write_bytes(b"")
    (root / "whole").mkdir()
    (root / "whole" / "bbb.webm").write_bytes(b"")
    table, report = convert("kinetics", [annotations], video_root=str(root))
    rows = rows_of(table)
    # A clip file is already cut: the window becomes the whole file, the original is kept.
    assert rows[0]["location"].endswith("train/abseiling/aaa_000004_000014.mp4")
    assert (rows[0]["start"], rows[0]["end"]) == (None, None)
    assert (rows[0]["clip_start"], rows[0]["clip_end"]) == (4.0, 14.0)
    # A whole video keeps the window.
    assert rows[1]["location"].endswith("whole/bbb.webm") and rows[1]["end"] == 10.0
    assert rows[2]["location"] == "https://www.youtube.com/watch?v=ccc"
    assert "1 of 3 rows have no video" in report.notes[0]
    dropped, _ = convert("kinetics", [annotations], video_root=str(root), drop_missing=True)
    assert dropped.num_rows == 2


def test_vatex_ids_split_from_the_right_and_captions_kept(tmp_path):
    data = [
        {
            "videoID": "Ptf_2VRj-V0_000122_000132",
            "enCap": [f"en {i}" for i in range(10)],
            "chCap": [f"中文 {i}" for i in range(10)],
        },  # fmt: skip
        {"videoID": "-_a_b_000001_000011", "enCap": ["  a person dances  "], "chCap": []},
    ]
    path = write(tmp_path / "vatex_training_v1.0.json", json.dumps(data, ensure_ascii=False))
    private = write(
        tmp_path / "vatex_private_test_without_annotations.json",
        json.dumps([{"videoID": "zzzzzzzzzzz_000003_000013"}]),
    )
    rows = rows_of(convert("vatex", [path, private])[0])
    assert rows[0]["youtube_id"] == "Ptf_2VRj-V0" and rows[0]["start"] == 122.0
    assert rows[0]["captions"] == [f"en {i}" for i in range(10)] and rows[0]["caption"] == "en 0"
    assert rows[0]["captions_zh"][3] == "中文 3"
    assert rows[1]["youtube_id"] == "-_a_b" and rows[1]["caption"] == "a person dances"
    assert rows[0]["split"] == "train" and rows[2]["split"] == "test"
    assert rows[2]["caption"] is None and rows[2]["captions"] == []
    assert split_clip_key("a_b_c_000001_000002") == ("a_b_c", 1, 2)
    bad = write(tmp_path / "bad.json", json.dumps([{"videoID": "no-window"}]))
    with pytest.raises(ConvertError, match="item 0.*<youtube id>_<start>_<end>"):
        convert("vatex", [bad])


def test_webvid_columns_by_name_durations_and_awkward_captions(tmp_path):
    two_m = write(
        tmp_path / "results_2M_val.csv",
        "videoid,contentUrl,duration,page_dir,name\n"
        "21179416,https://ak.picdn.net/a.mp4,PT00H00M11S,006001_006050,"
        '"Aerial shot, winter forest"\n'
        '5629184,https://ak.picdn.net/b.mp4,PT00H01M02S,002051_002100,"Line one\nline two"\n'
        "7,https://ak.picdn.net/c.mp4,PT00H00M05S,x,   Café à Paris — 東京   \n",
    )
    # The 2.5M release orders the columns differently.
    other = write(
        tmp_path / "results_10M_train.csv",
        "videoid,name,page_idx,page_dir,duration,contentUrl\n"
        "9,Sunset,1,000001_000050,PT1H2M3.5S,https://ak.picdn.net/d.mp4\n",
    )
    rows = rows_of(convert("webvid", [two_m, other])[0])
    assert [r["id"] for r in rows] == ["21179416", "5629184", "7", "9"]
    assert rows[0]["caption"] == "Aerial shot, winter forest" and rows[0]["duration"] == 11.0
    assert rows[1]["caption"] == "Line one line two" and rows[1]["duration"] == 62.0
    assert rows[2]["caption"] == "Café à Paris — 東京"
    assert rows[3]["location"] == "https://ak.picdn.net/d.mp4"
    assert rows[3]["duration"] == 3723.5 and rows[3]["split"] == "train"
    assert rows[0]["split"] == "val"
    assert iso_duration("PT17S") == 17.0
    bad = write(tmp_path / "bad.csv", "videoid,contentUrl,duration,page_dir,name\n1,u,17s,x,y\n")
    with pytest.raises(ConvertError, match=r"bad.csv:2: '17s' is not an ISO-8601"):
        convert("webvid", [bad])


def test_msrvtt_json_and_1k_a_csv(tmp_path):
    data = {
        "info": {},
        "videos": [
            {
                "category": 9,
                "url": "https://www.youtube.com/watch?v=9lZi22qLlEo",
                "video_id": "video0",
                "start time": 137.72,
                "end time": 149.44,
                "split": "train",
                "id": 0,
            },
            {
                "category": 4,
                "url": "https://www.youtube.com/watch?v=w4JM08PDEng",
                "video_id": "video7010",
                "start time": 1.0,
                "end time": 12.5,
                "split": "test",
                "id": 7010,
            },
        ],  # fmt: skip
        "sentences": [
            {"caption": "a car is shown", "video_id": "video0", "sen_id": 0},
            {"caption": "a man drives", "video_id": "video0", "sen_id": 1},
            {"caption": "people talk", "video_id": "video7010", "sen_id": 2},
        ],
    }
    path = write(tmp_path / "test_videodatainfo.json", json.dumps(data))
    rows = rows_of(convert("msrvtt", [path])[0])
    assert rows[0]["id"] == "video0" and rows[0]["captions"] == ["a car is shown", "a man drives"]
    assert (rows[0]["start"], rows[0]["end"]) == (137.72, 149.44)
    assert rows[0]["location"] == "https://www.youtube.com/watch?v=9lZi22qLlEo"
    assert rows[1]["split"] == "test"
    one_k = write(
        tmp_path / "MSRVTT_JSFUSION_test.csv",
        ",key,vid_key,video_id,sentence\n0,ret0,msr7010,video7010,a man talks to people\n",
    )
    rows = rows_of(convert("msrvtt", [path, one_k])[0])
    assert len(rows) == 1 and rows[0]["caption"] == "a man talks to people"
    assert rows[0]["start"] == 1.0 and rows[0]["split"] == "test"
    # The csv alone has no URL: it needs the released videoN.mp4 files.
    with pytest.raises(ValueError, match="no location.*--video-root"):
        convert("msrvtt", [one_k])
    root = tmp_path / "videos"
    root.mkdir()
    (root / "video7010.mp4").write_bytes(b"")
    rows = rows_of(convert("msrvtt", [one_k], video_root=str(root))[0])
    assert rows[0]["location"] == str(root / "video7010.mp4")


def test_activitynet_segments_clamped_and_empty_ones_counted(tmp_path):
    data = {
        "v_QOlSCBRmfWY": {
            "duration": 82.73,
            "timestamps": [[0.83, 19.86], [17.37, 60.81], [56.26, 90.0], [30.0, 30.0]],
            "sentences": [" A young woman is seen. ", "She dances.", "She bows.", "Nothing."],
        },
        "v_-a_b": {"duration": 10, "timestamps": [[0, 5]], "sentences": ["x"]},
    }
    path = write(tmp_path / "val_1.json", json.dumps(data))
    table, report = convert("activitynet", [path])
    rows = rows_of(table)
    assert [r["id"] for r in rows] == ["QOlSCBRmfWY_0", "QOlSCBRmfWY_1", "QOlSCBRmfWY_2", "-a_b_0"]
    assert rows[0]["caption"] == "A young woman is seen."
    assert rows[2]["end"] == 82.73 and rows[2]["start"] == 56.26
    assert rows[0]["split"] == "val" and rows[3]["youtube_id"] == "-a_b"
    assert any("1 segment ends past" in n for n in report.notes)
    assert any(
        n.startswith("1 lines with an invalid window left out")
        and f"{path}:1: v_QOlSCBRmfWY segment 3: the window is empty (30 - 30)" in n
        for n in report.notes
    )
    root = tmp_path / "videos"
    root.mkdir()
    (root / "v_QOlSCBRmfWY.mp4").write_bytes(b"")  # the name ActivityNet's own files use
    rows = rows_of(convert("activitynet", [path], video_root=str(root))[0])
    assert rows[1]["location"] == str(root / "v_QOlSCBRmfWY.mp4") and rows[1]["end"] == 60.81


def test_youcook2_and_howto100m(tmp_path):
    data = {
        "database": {
            "GLGEgpgwkCE": {
                "duration": 241.62, "subset": "training", "recipe_type": "113",
                "video_url": "https://www.youtube.com/watch?v=GLGEgpgwkCE",
                "annotations": [
                    {"segment": [90, 102], "id": 0, "sentence": "grill the tomatoes"},
                    {"segment": [114, 127], "id": 1, "sentence": "add oil"},
                ],
            },
            "testvid0001": {"duration": 100, "subset": "testing", "annotations": []},
        }
    }  # fmt: skip
    path = write(tmp_path / "youcookii_annotations_trainval.json", json.dumps(data))
    rows = rows_of(convert("youcook2", [path])[0])
    assert [r["id"] for r in rows] == ["GLGEgpgwkCE_0", "GLGEgpgwkCE_1", "testvid0001"]
    assert rows[1]["caption"] == "add oil" and (rows[1]["start"], rows[1]["end"]) == (114, 127)
    assert rows[0]["split"] == "train" and rows[2]["split"] == "test"
    assert rows[2]["start"] is None and rows[2]["caption"] is None

    csv = write(
        tmp_path / "HowTo100M_v1.csv",
        "video_id,category_1,category_2,rank,task_id\n"
        "nVbIUDjzWY4,Cars & Other Vehicles,Motorcycles,27,52907\n"
        "noSubs00000,Food,Baking,1,1\n",
    )
    captions = write(
        tmp_path / "caption.json",
        json.dumps({"nVbIUDjzWY4": {"start": [0.0, 4.5], "end": [4.5, 9.0],
                                    "text": ["so today", "we ride"]}}),
    )  # fmt: skip
    rows = rows_of(convert("howto100m", [csv, captions])[0])
    assert [r["id"] for r in rows] == ["nVbIUDjzWY4_0", "nVbIUDjzWY4_1", "noSubs00000"]
    assert rows[1]["caption"] == "we ride" and rows[1]["end"] == 9.0
    assert rows[0]["category_1"] == "Cars & Other Vehicles"


def test_wrong_format_and_encoding_errors_name_the_line(tmp_path, capsys):
    not_kinetics = write(tmp_path / "x.csv", "videoid,contentUrl\n1,u\n")
    assert convert_main(["kinetics", not_kinetics, "--out", str(tmp_path / "o.parquet")]) == 2
    err = capsys.readouterr().err
    assert "x.csv:1: no column youtube_id, time_start, time_end" in err and "videoid" in err
    bad_time = write(
        tmp_path / "k.csv", "label,youtube_id,time_start,time_end\na,b,1,2\na,c,ten,20\n"
    )
    with pytest.raises(ConvertError, match=r"k.csv:3: time_start 'ten' is not a number"):
        convert("kinetics", [bad_time], strict=True)
    table, report = convert("kinetics", [bad_time])  # by default: left out, and said so
    assert table.num_rows == 1 and "k.csv:3: time_start 'ten' is not a number" in report.notes[0]
    latin = write(tmp_path / "l.csv", "label,youtube_id,time_start,time_end\ncafé,a,1,2\n",
                  encoding="latin-1")  # fmt: skip
    with pytest.raises(ConvertError, match=r"l.csv:2: not valid utf-8.*--encoding"):
        convert("kinetics", [latin])
    assert rows_of(convert("kinetics", [latin], encoding="latin-1")[0])[0]["label"] == "café"
    broken = write(tmp_path / "v.json", '[{"videoID": "a_000001_000002",\n "enCap": [}]')
    with pytest.raises(ConvertError, match=r"v.json:2: not JSON"):
        convert("vatex", [broken])
    with pytest.raises(ValueError, match="unknown dataset 'kinetic'; supported: activitynet"):
        convert("kinetic", [broken])


def test_cli_writes_parquet_jsonl_and_csv(tmp_path, capsys):
    data = [{"videoID": "abc_000001_000003", "enCap": ["one, two", "three"], "chCap": []}]
    path = write(tmp_path / "vatex_validation_v1.0.json", json.dumps(data))
    for suffix in ("parquet", "jsonl", "csv"):
        out = tmp_path / f"table.{suffix}"
        assert convert_main(["vatex", path, "--out", str(out)]) == 0
    assert "1 rows from 1 file(s)" in capsys.readouterr().err
    assert pq.read_table(tmp_path / "table.parquet").column("captions").to_pylist() == [
        ["one, two", "three"]
    ]
    assert json.loads((tmp_path / "table.jsonl").read_text())["split"] == "val"
    from video2numpy.table import read_table

    back = read_table(str(tmp_path / "table.csv")).to_pylist()[0]
    assert json.loads(back["captions"]) == ["one, two", "three"] and back["start"] == 1.0


def test_vatex_to_embedding_dataset_and_frames(tmp_path, checkpoint, capsys):
    """Convert, point at local videos, encode: captions, windows and ids reach the shards;
    the same table gives video2numpy its 8 frames per clip with all captions kept."""
    import io
    import tarfile

    import numpy as np
    from conftest import MODEL

    from clip_video_encode.cli import main as encode_main
    from video2numpy.cli import main as frames_main
    from video2numpy.synth import frame_index, write_video

    root = tmp_path / "videos"
    root.mkdir()
    # One whole video (the window applies) and one file already cut to its clip.
    write_video(str(root / "-whole_vid_1.mp4"), n_frames=180, fps=30, width=160, height=120)
    write_video(str(root / "cut_000005_000007.mp4"), n_frames=60, fps=30, width=160, height=120)
    data = [
        {"videoID": "-whole_vid_1_000002_000004", "enCap": [f"whole {i}" for i in range(10)],
         "chCap": ["整"]},
        {"videoID": "cut_000005_000007", "enCap": ["cut 0", "cut 1"], "chCap": []},
        {"videoID": "gone_000001_000003", "enCap": ["not downloaded"], "chCap": []},
    ]  # fmt: skip
    annotations = write(tmp_path / "vatex_validation_v1.0.json", json.dumps(data))
    table = tmp_path / "vatex.parquet"
    assert convert_main(["vatex", annotations, "--out", str(table), "--video-root", str(root),
                         "--drop-missing"]) == 0  # fmt: skip
    assert "1 of 3 rows have no video" in capsys.readouterr().err

    dest = tmp_path / "embeddings"
    code = encode_main([str(table), "--dest", str(dest), "--model", MODEL, "--pretrained",
                        checkpoint, "--num-frames", "4", "--workers", "1", "--quiet",
                        "--save-columns", "captions,youtube_id,clip_start,clip_end"])  # fmt: skip
    assert code == 0
    assert (dest / "splits.csv").read_text() == "tar_file,split\n00000.tar,val\n"
    with tarfile.open(dest / "00000.tar") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar}
    whole, cut = (json.loads(members[f"00000000{i}.json"]) for i in range(2))
    assert whole["id"] == "-whole_vid_1_000002_000004" and whole["youtube_id"] == "-whole_vid_1"
    assert members["000000000.txt"].decode() == "whole 0"
    assert whole["captions"] == [f"whole {i}" for i in range(10)]
    assert (whole["start"], whole["end"]) == (2.0, 4.0)
    assert whole["timestamps"][0] == pytest.approx(2.0) and whole["timestamps"][-1] < 4.0
    assert (cut["start"], cut["clip_start"], cut["clip_end"]) == (None, 5.0, 7.0)
    assert cut["timestamps"][0] == 0.0 and members["000000001.txt"].decode() == "cut 0"
    assert np.load(io.BytesIO(members["000000000.npy"])).shape[0] == 4

    frames_dest = tmp_path / "frames"
    assert frames_main([str(table), "--dest", str(frames_dest), "--num-frames", "8",
                        "--save-columns", "captions", "--workers", "1"]) == 0  # fmt: skip
    record = json.loads((frames_dest / "-whole_vid_1_000002_000004.json").read_text())
    assert record["captions"] == [f"whole {i}" for i in range(10)]
    assert record["caption"] == "whole 0" and len(record["timestamps"]) == 8
    frames = np.load(frames_dest / "-whole_vid_1_000002_000004.npy")
    # 8 evenly spaced frames of the 2-4 s window (frames 60-119 of the 30 fps video), one at
    # the start of each eighth as video2numpy's num-frames mode picks them.
    assert [frame_index(f) for f in frames] == [60 + int(7.5 * k) for k in range(8)]


# -- the video-text collections of today ----------------------------------------------------


def test_panda70m_literal_lists_paired_by_position(tmp_path):
    # Captions with both quote kinds and commas (Python's repr switches to double quotes),
    # an id starting with "-", non-ASCII, a video whose lists are empty.
    import csv
    import io

    spans = [["0:00:00.000", "0:00:05.105"], ["0:01:02.500", "0:01:10.000"]]
    captions = ["a man's hand, then a dog", "café au lait, «très» bon"]
    shots = [[["0:00:00.000", "0:00:05.105"]],
             [["0:01:02.500", "0:01:05.000"], ["0:01:05.000", "0:01:10.000"]]]  # fmt: skip
    buffer = io.StringIO()  # written as the release is: Python reprs in csv-quoted cells
    csv.writer(buffer, lineterminator="\n").writerows([
        ["videoID", "url", "timestamp", "caption", "matching_score", "desirable_filtering",
         "shot_boundary_detection"],
        ["-0Wc4xA_Jjc", "https://www.youtube.com/watch?v=-0Wc4xA_Jjc", repr(spans),
         repr(captions), repr([0.4306640625, 0.41]), repr(["desirable", "static_foreground"]),
         repr(shots)],
    ])  # fmt: skip
    header, line1 = buffer.getvalue(), ""
    assert '"[""a man\'s hand, then a dog""' in header  # the quirk: both quote kinds
    line2 = "emptyvid,https://www.youtube.com/watch?v=emptyvid,[],[],[],[],[]\n"
    path = write(tmp_path / "panda70m_training_2m.csv", header + line1 + line2)
    table, report = convert("panda70m", [path])
    rows = rows_of(table)
    assert [r["id"] for r in rows] == ["-0Wc4xA_Jjc_0", "-0Wc4xA_Jjc_1"]
    assert rows[0]["caption"] == "a man's hand, then a dog"
    assert rows[1]["caption"] == "café au lait, «très» bon"
    assert (rows[1]["start"], rows[1]["end"]) == (62.5, 70.0)
    assert rows[0]["matching_score"] == 0.4306640625 and rows[1]["split"] == "train"
    assert rows[1]["desirable_filtering"] == "static_foreground"
    assert rows[1]["shot_boundaries"] == [[62.5, 65.0], [65.0, 70.0]]
    assert any("1 source videos list no clip" in n for n in report.notes)
    # Validation files have no training-only columns; a list that does not pair is refused.
    val = write(
        tmp_path / "panda70m_validation.csv",
        "videoID,url,timestamp,caption,matching_score\n"
        "v1,u,\"[['0:00:01.000', '0:00:02.000']]\",\"['x', 'y']\",[0.5]\n",
    )
    with pytest.raises(
        ConvertError, match=r"panda70m_validation.csv:2: v1: 1 timestamps, 2 captions"
    ):
        convert("panda70m", [val])
    evil = write(
        tmp_path / "panda70m_testing.csv",
        "videoID,url,timestamp,caption\nv1,u,\"__import__('os').system('touch pwned')\",[]\n",
    )
    with pytest.raises(ConvertError, match="not a Python literal"):
        convert("panda70m", [evil])
    assert not (tmp_path / "pwned").exists()


def test_internvid_and_hdvila_jsonl(tmp_path):
    lines = [
        {
            "YoutubeID": "-abc_def",
            "Start_timestamp": "00:00:01.500",
            "End_timestamp": "00:00:04.250",
            "Caption": "a skier, mid-air",
            "Aesthetic_Score": 4.9,
            "UMT_Score": 0.42,
        },
        {
            "YoutubeID": "xyz",
            "Start_timestamp": "01:00:00.000",
            "End_timestamp": "01:00:03.000",
            "Caption": "日本語のキャプション",
            "Aesthetic_Score": None,
            "UMT_Score": "0.3",
        },
    ]
    path = write(
        tmp_path / "InternVid-10M-FLT.jsonl",
        "\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n\n",
    )
    rows = rows_of(convert("internvid", [path])[0])
    assert [r["id"] for r in rows] == ["-abc_def_1.500_4.250", "xyz_3600.000_3603.000"]
    assert rows[0]["location"] == "https://www.youtube.com/watch?v=-abc_def"
    assert (rows[1]["start"], rows[1]["end"]) == (3600.0, 3603.0)
    assert rows[1]["caption"] == "日本語のキャプション" and rows[1]["umt_score"] == 0.3
    assert rows[1]["aesthetic_score"] is None and rows[0]["aesthetic_score"] == 4.9
    bad = write(tmp_path / "bad.jsonl", json.dumps(lines[0]) + '\n{"YoutubeID": "a"}\n')
    with pytest.raises(ConvertError, match=r"bad.jsonl:2: needs YoutubeID, Start_timestamp"):
        convert("internvid", [bad])

    video = {
        "video_id": "QMi8x8o55Ns",
        "url": "https://www.youtube.com/watch?v=QMi8x8o55Ns",
        "clip": [
            {"clip_id": "QMi8x8o55Ns.1.mp4", "span": ["00:00:17.759", "00:00:23.279"]},
            {"clip_id": "QMi8x8o55Ns.16.mp4", "span": ["00:04:52.140", "00:05:03.350"]},
        ],
    }
    empty = {"video_id": "-noclips", "url": "https://www.youtube.com/watch?v=-noclips", "clip": []}
    path = write(
        tmp_path / "hdvila_part0.jsonl", json.dumps(video) + "\n" + json.dumps(empty) + "\n"
    )
    table, report = convert("hdvila", [path])
    rows = rows_of(table)
    assert [r["id"] for r in rows] == ["QMi8x8o55Ns.1", "QMi8x8o55Ns.16"]
    assert rows[1]["start"] == pytest.approx(292.14) and rows[1]["end"] == pytest.approx(303.35)
    assert "1 videos list no clip" in report.notes[0]


def test_openvid_charades_sta_and_ssv2_need_their_videos(tmp_path):
    root = tmp_path / "videos"
    (root / "part1").mkdir(parents=True)
    for name in ("celebv_--Jiv5iYqT8_0.mp4", "AO8RW.mp4", "Y6R7T.mp4", "78687.webm", "1420.webm"):
        (root / "part1" / name).write_bytes(b"")
    openvid = write(
        tmp_path / "OpenVid-1M.csv",
        "video,caption,aesthetic score,motion score,temporal consistency score,"
        "camera motion,frame,fps,seconds\n"
        'celebv_--Jiv5iYqT8_0.mp4,"A woman, smiling; ""quoted""",5.1,0.8,0.99,static,'
        "120,30.0,4.0\n"
        "notdownloaded.mp4,x,1,1,1,pan_left,10,25,0.4\n",
    )
    with pytest.raises(ValueError, match="no location.*--video-root"):
        convert("openvid", [openvid])
    with pytest.raises(ValueError, match="row notdownloaded has no location"):
        convert("openvid", [openvid], video_root=str(root))  # not there, and no URL to fall back on
    table, report = convert("openvid", [openvid], video_root=str(root), drop_missing=True)
    rows = rows_of(table)
    assert len(rows) == 1 and "1 of 2 rows have no video" in report.notes[0]
    assert rows[0]["location"].endswith("part1/celebv_--Jiv5iYqT8_0.mp4")
    assert rows[0]["caption"] == 'A woman, smiling; "quoted"' and rows[0]["frames"] == 120
    assert rows[0]["duration"] == 4.0 and rows[0]["camera_motion"] == "static"

    sta = write(
        tmp_path / "charades_sta_train.txt",
        "AO8RW 0.0 6.9##a person is putting a book on a shelf.\n"
        "AO8RW 5.5 12.0##person begins to play on a phone.\r\n"
        "Y6R7T 20.8 30.0##a person opens the door, then ## leaves\n",
    )
    rows = rows_of(convert("charades-sta", [sta], video_root=str(root))[0])
    assert [r["id"] for r in rows] == ["AO8RW_0", "AO8RW_1", "Y6R7T_0"]
    assert rows[1]["caption"] == "person begins to play on a phone."
    assert rows[2]["caption"] == "a person opens the door, then ## leaves"
    assert rows[0]["location"].endswith("AO8RW.mp4") and (rows[0]["start"], rows[0]["end"]) == (
        0.0,
        6.9,
    )
    assert rows[0]["split"] == "train"
    broken = write(tmp_path / "charades_sta_test.txt", "AO8RW 0.0 6.9 a person\n")
    with pytest.raises(
        ConvertError, match=r"charades_sta_test.txt:1: expected 'VIDEOID START END##sentence'"
    ):
        convert("charades-sta", [broken])

    train = write(
        tmp_path / "something-something-v2-train.json",
        json.dumps(
            [
                {
                    "id": "78687",
                    "label": "holding potato next to vicks vaporub bottle",
                    "template": "Holding [something] next to [something]",
                    "placeholders": ["potato", "vicks vaporub bottle"],
                }
            ]
        ),
    )
    test = write(tmp_path / "something-something-v2-test.json", json.dumps([{"id": "1420"}]))
    labels = write(
        tmp_path / "something-something-v2-labels.json",
        json.dumps(
            {
                "Approaching something with your camera": "0",
                "Holding something next to something": "26",
            }
        ),
    )
    table, report = convert("ssv2", [train, test, labels], video_root=str(root))
    rows = rows_of(table)
    assert [r["id"] for r in rows] == ["78687", "1420"]
    assert rows[0]["label_index"] == 26 and rows[0]["placeholders"] == [
        "potato",
        "vicks vaporub bottle",
    ]
    assert rows[0]["location"].endswith("78687.webm") and rows[0]["split"] == "train"
    assert rows[1]["caption"] is None and rows[1]["split"] == "test"


def test_qvhighlights_and_didemo_moments(tmp_path):
    items = [
        {
            "qid": 2579,
            "query": "A girl and her mother cooked while talking with each other.",
            "duration": 150,
            "vid": "-NUsG9BgSes0_210.0_360.0",
            "relevant_windows": [[0, 14], [140, 152]],
            "relevant_clip_ids": [0, 1, 2],
            "saliency_scores": [[4, 3, 3], [4, 3, 4], [4, 3, 3]],
        },
        {
            "qid": 9769,
            "query": "People are eating at a café",
            "duration": 150,
            "vid": "j7rJstUseKg_360.0_510.0",
        },
    ]
    path = write(
        tmp_path / "highlight_val_release.jsonl",
        "\n".join(json.dumps(x, ensure_ascii=False) for x in items),
    )
    table, report = convert("qvhighlights", [path])
    rows = rows_of(table)
    assert [r["id"] for r in rows] == ["2579", "9769"]
    assert rows[0]["youtube_id"] == "-NUsG9BgSes0" and (rows[0]["start"], rows[0]["end"]) == (
        210.0,
        360.0,
    )
    assert rows[0]["relevant_windows"] == [[0.0, 14.0], [140.0, 150.0]]  # clamped to 150 s
    assert rows[0]["saliency_scores"][1] == [4, 3, 4] and rows[1]["relevant_windows"] is None
    assert rows[0]["split"] == "val" and "1 relevant windows ended past" in report.notes[0]

    data = [
        {
            "annotation_id": 2020,
            "description": "the dog jumps",
            "video": "13465426@N06_3181283624_1b6fb4b17a.mov",
            "times": [[2, 2], [2, 3], [2, 2], [1, 2]],
            "dl_link": "https://www.flickr.com/photos/13465426@N06/3181283624/",
        },
        {
            "annotation_id": 7,
            "description": "camera zooms out",
            "video": "a.mov",
            "times": [[5, 5], [4, 5]],
            "dl_link": "https://example.org/a",
        },
    ]
    path = write(tmp_path / "val_data.json", json.dumps(data))
    rows = rows_of(convert("didemo", [path])[0])
    assert [r["id"] for r in rows] == ["2020", "7"]
    assert (rows[0]["start"], rows[0]["end"]) == (10.0, 15.0)  # [2, 2], chosen by two
    assert rows[0]["moments"] == [[10.0, 15.0], [10.0, 20.0], [10.0, 15.0], [5.0, 15.0]]
    assert (rows[1]["start"], rows[1]["end"]) == (25.0, 30.0)  # a tie: the first listed
    bad = write(tmp_path / "test_data.json", json.dumps([{"video": "b", "times": [[3, 1]]}]))
    with pytest.raises(ValueError, match="no rows: all 1 lines were left out .*times .* are not"):
        convert("didemo", [bad])
    with pytest.raises(ConvertError, match=r"test_data.json:1: entry 0 \(b\): times .* are not"):
        convert("didemo", [bad], strict=True)


def test_howto100m_captions_stream_in_the_csv_order(tmp_path, capsys):
    csv = write(
        tmp_path / "HowTo100M_v1.csv",
        "video_id,category_1,category_2,rank,task_id\n"
        "-second,Food,Baking,1,1\nfirst,Cars,Motorcycles,27,52907\nnosubs,Food,B,1,1\n",
    )
    captions = write(
        tmp_path / "caption.json",
        json.dumps(
            {
                "first": {"start": [0, 4.5], "end": [4.5, 9], "text": ["so today", "we ride"]},
                "-second": {"start": [1.0], "end": [2.0], "text": ["bake, then «rest»"]},
                "onlyhere": {"start": [3.0], "end": [4.0], "text": ["not in the csv"]},
            },
            ensure_ascii=False,
        ),
    )
    rows = rows_of(convert("howto100m", [csv, captions])[0])
    assert [r["id"] for r in rows] == ["-second_0", "first_0", "first_1", "nosubs", "onlyhere_0"]
    assert rows[0]["caption"] == "bake, then «rest»" and rows[1]["category_1"] == "Cars"
    assert rows[3]["caption"] is None and rows[4]["category_1"] is None
    alone = rows_of(convert("howto100m", [captions])[0])
    assert [r["id"] for r in alone] == ["first_0", "first_1", "-second_0", "onlyhere_0"]
    out = tmp_path / "howto.parquet"
    assert convert_main(["howto100m", csv, captions, "--out", str(out)]) == 0
    assert pq.read_table(out).num_rows == 5
    broken = write(
        tmp_path / "broken.json", '{"a": {"start": [1], "end": [2], "text": ["x"]}, "b": '
    )
    with pytest.raises(ConvertError, match="broken.json: not JSON"):
        convert("howto100m", [broken])


def test_streamed_output_spans_batches(tmp_path):
    """Rows written in several batches (parquet row groups, csv, jsonl) read back whole."""
    from converters.output import write_rows

    rows = [
        {
            "id": str(i),
            "location": f"u{i}",
            "caption": None if i % 3 else "c",
            "start": None,
            "end": None,
            "split": None,
            "score": float(i),
            "tags": [str(i)] if i % 2 else [],
        }
        for i in range(25)
    ]
    for suffix in ("parquet", "csv", "jsonl"):
        out = tmp_path / f"t.{suffix}"
        assert write_rows(iter(rows), str(out), batch_rows=10) == 25
    table = pq.read_table(tmp_path / "t.parquet")
    assert table.num_rows == 25 and pq.ParquetFile(tmp_path / "t.parquet").num_row_groups == 3
    assert (
        table.column("tags").to_pylist()[3] == ["3"]
        and table.column("caption").to_pylist()[3] == "c"
    )
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    assert len(lines) == 25 and json.loads(lines[24])["score"] == 24.0
    assert len((tmp_path / "t.csv").read_text().splitlines()) == 26
    late = [*rows[:10], {**rows[10], "surprise": 1}]
    with pytest.raises(ValueError, match="column surprise first appears after the first 10 rows"):
        write_rows(iter(late), str(tmp_path / "late.parquet"), batch_rows=10)
    assert not list(tmp_path.glob("late.parquet*"))  # nothing half-written is left
    assert write_rows(iter(rows), str(tmp_path / "new" / "dir" / "t.parquet")) == 25
