"""Property tests of ``video-convert``: every converter, fed generated annotation files with
quoting, byte-order marks, CRLF, odd encodings, repeated rows and bad cells (times that are
not numbers, empty ids, windows that end before they start, huge values), either writes a
table or stops with an error that names the file and line. Never a traceback, never a column
left empty without a word, never a repeated id, never NaN or infinity in the table.

The CLI is run in-process (``converters.cli.main``); its exit path is what is checked.
"""

import contextlib
import csv
import io
import json
import math
import os
import re
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from converters.cli import main as convert_main

EXAMPLES = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Text cells: quotes, separators, newlines, NUL, the Charades "##", unicode from several
# planes (surrogates excepted: no encoding writes them).
TEXT = st.text(
    st.one_of(
        st.sampled_from(list(",\"'\n\r\t#;\\ \x00\ufeff")),
        st.characters(blacklist_categories=("Cs",)),
    ),
    max_size=10,
)


def mostly(good, bad):
    """``good`` seven times in eight, ``bad`` the eighth (shrinking towards ``good``): an
    example of several rows then has a bad cell about half the time."""
    return st.integers(0, 7).flatmap(lambda i: bad if i == 7 else good)


# An id: mostly YouTube-like, sometimes empty, spaced or hostile.
IDS = mostly(
    st.from_regex(r"[A-Za-z0-9_-]{1,11}", fullmatch=True),
    st.sampled_from(["", " ", "a,b", 'q"t', "é", "a b", "..", "/", "x\ny", "v_", "_"]),
)
# A time cell as text: valid seconds, and every kind of bad one.
TIMES = mostly(
    st.one_of(
        st.integers(0, 400).map(str),
        st.floats(0, 400, allow_nan=False).map(lambda x: f"{x:.2f}"),
    ),
    st.sampled_from(["", "nan", "inf", "-inf", "-5", "1e400", "1e12", "ten", " 7 ", "３", "1_0"]),
)
# A time as a JSON value: numbers (negative, huge, fractional), text, null, lists, booleans.
JTIMES = mostly(
    st.one_of(st.integers(0, 400), st.floats(0, 400)),
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([None, -5, "7", "x", [], True, 1e308, 10**30]),
    ),
)
CLOCKS = mostly(
    st.tuples(st.integers(0, 2), st.integers(0, 59), st.floats(0, 59.999)).map(
        lambda t: f"{t[0]}:{t[1]:02d}:{t[2]:06.3f}"
    ),
    st.sampled_from(["", "1:-5", "99999:00:00", "nan", "0:00:xx", "::", "5", "-0:01"]),
)
ODD = mostly(st.just(0), st.just(1))  # now and then one list item more than the others
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1"]


@st.composite
def repeated(draw, rows):
    """``rows`` with some of them repeated (exact duplicates) at drawn places."""
    rows = list(rows)
    for _ in range(draw(st.integers(0, 2)) if rows else 0):
        rows.insert(draw(st.integers(0, len(rows))), rows[draw(st.integers(0, len(rows) - 1))])
    return rows


@st.composite
def csv_text(draw, header, cells):
    """A csv: ``header``, then rows of ``cells`` (a strategy of lists), quoting, CRLF and a
    garbled byte-order mark drawn."""
    rows = draw(repeated(draw(st.lists(cells, min_size=1, max_size=5))))
    buffer = io.StringIO()
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    writer = csv.writer(buffer, quoting=quoting, lineterminator=ending)
    writer.writerow(header)
    writer.writerows(rows)
    prefix = draw(st.sampled_from(["", "", "\ufeff", "\u00ef\u00bb\u00bf"]))
    return prefix + buffer.getvalue()


def lines_text(draw, lines):
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    return "".join(line + ending for line in draw(repeated(lines)))


def jsonl(draw, items):
    return lines_text(draw, [json.dumps(x, ensure_ascii=draw(st.booleans())) for x in items])


def dump(draw, value):
    return json.dumps(
        value, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 1]))
    )


# Each builder draws the files of one dataset: {file name: text}, and its extra arguments.
@st.composite
def kinetics(draw):
    cells = st.lists(st.one_of(TEXT, IDS, TIMES), min_size=5, max_size=5)
    row = st.tuples(TEXT, IDS, TIMES, TIMES, st.sampled_from(["train", "validate", "x", ""]))
    header = draw(
        st.sampled_from(
            [
                ["label", "youtube_id", "time_start", "time_end", "split"],
                ["youtube_id", "time_start", "time_end", "split", "is_cc"],
            ]
        )
    )
    return {"train.csv": draw(csv_text(header, st.one_of(row.map(list), cells)))}, []


@st.composite
def webvid(draw):
    duration = st.one_of(st.integers(0, 99).map(lambda s: f"PT00H00M{s:02d}S"), TIMES)
    row = st.tuples(
        IDS, mostly(st.just("https://a/b.mp4"), st.sampled_from(["", "u"])), duration, TEXT, TEXT
    )
    header = ["videoid", "contentUrl", "duration", "page_dir", "name"]
    return {"results_2M_val.csv": draw(csv_text(header, row.map(list)))}, []


@st.composite
def openvid(draw):
    number = st.one_of(TIMES, st.just("12"))
    row = st.tuples(IDS.map(lambda s: s + ".mp4"), TEXT, number, number, number,
                    TEXT, number, number, number)  # fmt: skip
    header = ["video", "caption", "aesthetic score", "motion score",
              "temporal consistency score", "camera motion", "frame", "fps", "seconds"]  # fmt: skip
    return {"OpenVid-1M.csv": draw(csv_text(header, row.map(list)))}, ["--video-root", "VIDEOS"]


@st.composite
def panda70m(draw):
    n = draw(st.integers(0, 3))
    spans = st.lists(st.tuples(CLOCKS, CLOCKS).map(list), min_size=n, max_size=n).map(repr)
    captions = st.lists(TEXT, min_size=n, max_size=n).map(repr)
    scores = st.lists(st.one_of(st.floats(0, 1), st.sampled_from(["x", None])),
                      min_size=n, max_size=n + draw(ODD)).map(repr)  # fmt: skip
    literal = st.sampled_from(["", "[", "__import__('os')", "5", "'abc'"])
    row = st.tuples(IDS, st.sampled_from(["", "https://youtu.be/x"]),
                    mostly(spans, literal), captions, mostly(scores, literal))  # fmt: skip
    header = ["videoID", "url", "timestamp", "caption", "matching_score"]
    return {"panda70m_validation.csv": draw(csv_text(header, row.map(list)))}, []


@st.composite
def howto100m(draw):
    header = ["video_id", "category_1", "category_2", "rank", "task_id"]
    files = {}
    video_ids = draw(st.lists(IDS, min_size=1, max_size=4))
    if draw(st.booleans()):
        row = st.tuples(st.sampled_from(video_ids), TEXT, TEXT, TEXT, TEXT)
        files["HowTo100M_v1.csv"] = draw(csv_text(header, row.map(list)))
    if draw(st.booleans()) or not files:
        subtitles = {}
        for video_id in video_ids:
            n = draw(st.integers(0, 3))
            subtitles[video_id] = {
                "start": draw(st.lists(JTIMES, min_size=n, max_size=n)),
                "end": draw(st.lists(JTIMES, min_size=n, max_size=n + draw(ODD))),
                "text": draw(st.lists(st.one_of(TEXT, st.none()), min_size=n, max_size=n)),
            }
        files["caption.json"] = dump(draw, subtitles)
    return files, []


@st.composite
def msrvtt(draw):
    video = st.fixed_dictionaries({"video_id": IDS, "url": st.sampled_from(
        ["https://www.youtube.com/watch?v=abcdefghijk", "", "x", None]),
        "start time": JTIMES, "end time": JTIMES, "split": st.sampled_from(["train", "test", 5]),
        "category": mostly(st.integers(0, 19), TEXT)})  # fmt: skip
    videos = draw(repeated(draw(st.lists(video, min_size=1, max_size=4))))
    ids = [v["video_id"] for v in videos] or ["video0"]
    sentence = st.fixed_dictionaries({"video_id": st.sampled_from(ids), "caption": TEXT})
    data = {"videos": videos, "sentences": draw(st.lists(sentence, max_size=4))}
    files = {"train_val_videodatainfo.json": dump(draw, data)}
    if draw(st.booleans()):
        row = st.tuples(st.integers(0, 9).map(str), TEXT, TEXT, st.sampled_from(ids), TEXT)
        header = ["", "key", "vid_key", "video_id", "sentence"]
        files["MSRVTT_JSFUSION_test.csv"] = draw(csv_text(header, row.map(list)))
    return files, ["--video-root", "VIDEOS"]


@st.composite
def charades_sta(draw):
    line = mostly(
        st.tuples(IDS, TIMES, TIMES, TEXT).map(
            lambda t: f"{t[0]} {t[1]} {t[2]}##{t[3]}".replace("\n", " ").replace("\r", " ")
        ),
        TEXT.map(lambda s: s.replace("\n", " ").replace("\r", " ")),
    )
    lines = draw(st.lists(line, min_size=1, max_size=5))
    return {"charades_sta_train.txt": lines_text(draw, lines)}, ["--video-root", "VIDEOS"]


@st.composite
def activitynet(draw):
    data = {}
    for key in draw(st.lists(IDS.map(lambda s: "v_" + s), min_size=1, max_size=3)):
        n = draw(st.integers(0, 3))
        data[key] = {
            "duration": draw(st.one_of(JTIMES, st.just(100))),
            "timestamps": draw(
                st.lists(
                    st.one_of(st.lists(JTIMES, min_size=2, max_size=2), JTIMES),
                    min_size=n,
                    max_size=n,
                )
            ),  # fmt: skip
            "sentences": draw(
                st.lists(
                    st.one_of(TEXT, st.none(), st.integers()),
                    min_size=n,
                    max_size=n + draw(ODD),
                )
            ),  # fmt: skip
        }
    return {"val_1.json": dump(draw, data)}, []


@st.composite
def youcook2(draw):
    database = {}
    for key in draw(st.lists(IDS, min_size=1, max_size=3)):
        annotation = st.fixed_dictionaries({"segment": st.one_of(
            st.lists(JTIMES, min_size=2, max_size=2), JTIMES), "sentence": TEXT,
            "id": mostly(st.integers(0, 3), st.just("x"))})  # fmt: skip
        database[key] = {
            "subset": draw(st.sampled_from(["training", "validation", "testing", 3])),
            "duration": draw(JTIMES),
            "annotations": draw(repeated(draw(st.lists(annotation, max_size=3)))),
        }
    return {"youcookii_annotations_trainval.json": dump(draw, {"database": database})}, []


@st.composite
def vatex(draw):
    key = st.tuples(IDS, TIMES, TIMES).map(lambda t: f"{t[0]}_{t[1]}_{t[2]}")
    item = st.fixed_dictionaries(
        {
            "videoID": mostly(key, IDS),
            "enCap": st.one_of(st.lists(TEXT, max_size=3), TEXT, st.none()),
            "chCap": st.lists(TEXT, max_size=2),
        }
    )
    items = draw(repeated(draw(st.lists(item, min_size=1, max_size=4))))
    return {"vatex_training_v1.0.json": dump(draw, items)}, []


@st.composite
def didemo(draw):
    item = st.fixed_dictionaries({
        "annotation_id": st.one_of(st.integers(0, 5), TEXT, st.none()), "description": TEXT,
        "video": mostly(IDS.map(lambda s: s + ".mov"), st.just(None)),
        "times": st.lists(st.one_of(st.lists(st.one_of(st.integers(-1, 6), JTIMES),
                                             min_size=2, max_size=2), JTIMES), max_size=4),
        "dl_link": st.sampled_from(["https://www.flickr.com/photos/x/1/", "", None])})  # fmt: skip
    items = draw(repeated(draw(st.lists(item, min_size=1, max_size=4))))
    return {"val_data.json": dump(draw, items)}, []


@st.composite
def ssv2(draw):
    item = st.fixed_dictionaries(
        {
            "id": IDS,
            "label": TEXT,
            "template": st.one_of(TEXT, st.just("Holding [something]")),
            "placeholders": st.lists(TEXT, max_size=2),
        }
    )
    items = draw(repeated(draw(st.lists(item, min_size=1, max_size=4))))
    labels = draw(st.dictionaries(TEXT, st.one_of(st.integers(0, 9).map(str), TEXT), max_size=2))
    return {"something-something-v2-train.json": dump(draw, items),
            "something-something-v2-labels.json": dump(draw, labels)}, [
        "--video-root", "VIDEOS"]  # fmt: skip


@st.composite
def qvhighlights(draw):
    vid = st.tuples(IDS, TIMES, TIMES).map(lambda t: f"{t[0]}_{t[1]}_{t[2]}")
    item = st.fixed_dictionaries({
        "qid": st.one_of(st.integers(0, 5), IDS), "query": TEXT, "vid": mostly(vid, IDS),
        "duration": JTIMES, "relevant_windows": st.one_of(st.none(), st.lists(st.one_of(
            st.lists(JTIMES, min_size=2, max_size=2), JTIMES), max_size=3)),
        "relevant_clip_ids": st.one_of(st.none(), st.lists(st.integers(0, 74), max_size=3),
                                       TEXT),
        "saliency_scores": st.one_of(st.none(), st.lists(st.lists(st.integers(0, 4),
                                                                  max_size=3), max_size=2)),
    })  # fmt: skip
    return {
        "highlight_val_release.jsonl": jsonl(draw, draw(st.lists(item, min_size=1, max_size=4)))
    }, []


@st.composite
def internvid(draw):
    item = st.fixed_dictionaries({
        "YoutubeID": mostly(IDS, st.none()), "Start_timestamp": CLOCKS,
        "End_timestamp": CLOCKS, "Caption": st.one_of(TEXT, st.none()),
        "Aesthetic_Score": JTIMES, "UMT_Score": st.one_of(JTIMES, TEXT)})  # fmt: skip
    return {
        "InternVid-10M-FLT.jsonl": jsonl(draw, draw(st.lists(item, min_size=1, max_size=4)))
    }, []


@st.composite
def hdvila(draw):
    clip = st.fixed_dictionaries({"clip_id": st.one_of(IDS.map(lambda s: s + ".mp4"), st.none()),
                                  "span": st.one_of(st.lists(CLOCKS, min_size=2, max_size=2),
                                                    CLOCKS)})  # fmt: skip
    item = st.fixed_dictionaries({"video_id": IDS, "url": st.sampled_from(["", "https://y/x"]),
                                  "clip": st.lists(clip, max_size=3)})  # fmt: skip
    return {"hdvila_part0.jsonl": jsonl(draw, draw(st.lists(item, min_size=1, max_size=4)))}, []


BUILDERS = {
    "kinetics": kinetics, "webvid": webvid, "openvid": openvid, "panda70m": panda70m,
    "howto100m": howto100m, "msrvtt": msrvtt, "charades-sta": charades_sta,
    "activitynet": activitynet, "youcook2": youcook2, "vatex": vatex, "didemo": didemo,
    "ssv2": ssv2, "qvhighlights": qvhighlights, "internvid": internvid, "hdvila": hdvila,
}  # fmt: skip
# Formats read whole or streamed as one long line: errors there name the file and the entry.
NO_LINES = {"howto100m"}


def _reject_constant(name):
    raise AssertionError(f"{name} written into the table")


@st.composite
def encoded(draw, dataset):
    files, extra = draw(BUILDERS[dataset]())
    encoding = draw(st.sampled_from(ENCODINGS))
    bom = draw(st.booleans()) and encoding in ("utf-8", "utf-16-le", "utf-16-be")
    try:
        for text in files.values():
            text.encode(encoding)
    except UnicodeEncodeError:  # latin-1 cannot hold the text: UTF-8 then
        encoding, bom = "utf-8", False
    mark = "\ufeff".encode(encoding) if bom else b""
    blobs = {name: mark + text.encode(encoding) for name, text in files.items()}
    # Now and then the file is read with another encoding than it was written in.
    told = draw(mostly(st.just(encoding), st.sampled_from(["utf-8", "utf-16"])))
    return blobs, extra, told, draw(st.booleans())


def run_cli(dataset, blobs, extra, encoding, strict, folder):
    paths = []
    for name, data in blobs.items():
        path = os.path.join(folder, name)
        with open(path, "wb") as f:
            f.write(data)
        paths.append(path)
    videos = os.path.join(folder, "videos")
    os.makedirs(videos, exist_ok=True)
    for stem in ("abcdefghijk", "a", "AO8RW", "x", "video0"):  # a few rows find their video
        for suffix in (".mp4", ".webm"):
            open(os.path.join(videos, stem + suffix), "wb").close()
    out = os.path.join(folder, "out.jsonl")
    args = [dataset, *paths, "--out", out, "--encoding", encoding]
    args += [videos if a == "VIDEOS" else a for a in extra] + (["--strict"] if strict else [])
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = convert_main(args)
        except SystemExit as exc:  # argparse's own exit path
            code = exc.code
    return code, err.getvalue(), paths, out


def check(dataset, code, err, paths, out):
    assert code in (0, 2), (code, err)
    if code == 2:
        assert err.startswith("video-convert: error: "), err
        named = [p for p in paths if p in err]
        assert named, f"the error names no file: {err}"
        if dataset not in NO_LINES or not any(p.endswith(".json") for p in named):
            assert re.search(r"\.(csv|json|jsonl|txt):\d+[:;)]", err), f"no line named: {err}"
        assert not os.path.exists(out), "a table was left behind by a failed conversion"
        return
    rows = [json.loads(line, parse_constant=_reject_constant)
            for line in open(out, encoding="utf-8").read().split("\n") if line]  # fmt: skip
    ids = [r["id"] for r in rows]
    assert all(isinstance(i, str) and i.strip() for i in ids), ids
    assert len(ids) == len(set(ids)), f"repeated ids: {ids}"
    for row in rows:
        assert row["location"], row
        for key in ("start", "end", "clip_start", "clip_end"):
            value = row.get(key)
            assert value is None or (math.isfinite(value) and value >= 0), row
        if row.get("start") is not None and row.get("end") is not None:
            assert row["start"] < row["end"], row
    if rows and all(r.get("caption") is None for r in rows) and dataset != "hdvila":
        assert "none of the" in err and "has a caption" in err, err


def exercise(dataset, case):
    blobs, extra, encoding, strict = case
    with tempfile.TemporaryDirectory() as folder:
        code, err, paths, out = run_cli(dataset, blobs, extra, encoding, strict, folder)
        check(dataset, code, err, paths, out)
        left_out = re.search(r"lines with an invalid window left out \((.+?): ", err)
        if code == 0 and left_out:  # --strict stops at the first of them (or earlier) instead
            first = left_out.group(1)
            os.remove(out)
            code, err, paths, out = run_cli(dataset, blobs, extra, encoding, True, folder)
            assert code == 2, err
            check(dataset, code, err, paths, out)
            path, _, line = first.rpartition(":")
            stop = re.search(rf"error: {re.escape(path)}:(\d+): ", err)
            assert stop is None or not line.isdigit() or int(stop.group(1)) <= int(line), err


@pytest.mark.parametrize("dataset", sorted(BUILDERS))
def test_every_converter_writes_rows_or_names_the_bad_line(dataset):
    EXAMPLES(given(encoded(dataset))(lambda case: exercise(dataset, case)))()
