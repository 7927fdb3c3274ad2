"""video2numpy's destination: one safe, unique, stable name per input, and a run file that
refuses to mix runs with other settings or input (``--overwrite`` redoes one)."""

import json
import os
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from video2numpy.cli import main
from video2numpy.outputs import RUN_FILE, output_names
from video2numpy.status import FAILED_TO_DECODE, FAILED_TO_FETCH, NO_FRAMES, SUCCESS, TIMEOUT
from video2numpy.synth import frame_index, write_video

SAFE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
NAME_MAX = 255  # bytes in one file name (ext4, XFS, APFS, NTFS)
LONGEST_SUFFIX = ".json.partial"
STATUSES = {SUCCESS, FAILED_TO_FETCH, FAILED_TO_DECODE, NO_FRAMES, TIMEOUT}

HOSTILE = [
    ".",
    "..",
    "/",
    "\\",
    "",
    "a\x00b.mp4",
    "vidéo.mp4",
    "video.mp4",
    "视频.mp4",
    "x" * 300 + ".mp4",
    "x" * 300 + "y.mp4",
    "A.mp4",
    "a.mp4",
    "https://h.org/dl/x.mp4?sig=1",
    "https://h.org/dl/x.mp4?sig=2",
    "https://h.org/",
    "dQw4w9WgXcQ",
    "dqw4w9wgxcq",
    "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
    "C:\\videos\\clip.mp4",
    "/a/clip.mp4",
    "/b/clip.mp4",
    "clip_1.mp4",
    "run.mp4",
    "RUN.mp4",
    "CON.mp4",
    "../../etc/passwd",
    "my%20clip.mp4",
]


def check_names(names, n):
    """The invariants every list of output names keeps."""
    assert len(names) == n
    folded = [name.lower() for name in names]  # case-insensitive filesystems
    assert len(set(folded)) == n, [x for x in names if folded.count(x.lower()) > 1]
    assert RUN_FILE.removesuffix(".json") not in folded  # never the run file's name
    for name in names:
        assert SAFE.match(name), name
        assert len((name + LONGEST_SUFFIX).encode()) <= NAME_MAX, name
        assert name.split(".")[0].upper() not in {"CON", "PRN", "AUX", "NUL"}


def test_hostile_names_are_safe_unique_and_stable():
    rows = [{"location": loc, "id": None} for loc in HOSTILE]
    names = output_names(rows)
    check_names(names, len(rows))
    assert output_names([dict(r) for r in rows]) == names  # the same input, the same names
    by_location = dict(zip(HOSTILE, names, strict=True))
    assert by_location["vidéo.mp4"] != by_location["video.mp4"]
    assert by_location["vidéo.mp4"].startswith("video")  # accents kept as their letter
    assert by_location["https://www.youtube.com/watch?v=dQw4w9WgXcQ"].startswith("dQw4w9WgXcQ")
    assert by_location["my%20clip.mp4"] == "my_20clip"  # a local name is taken as it is
    # A file name is its own name when no other input has it, whatever its case.
    assert by_location["clip_1.mp4"] == "clip_1" and by_location["CON.mp4"] != "CON"


def test_the_reported_collision():
    """a/clip.mp4, b/clip.mp4 and clip_1.mp4 were clip_0, clip_1, clip_1."""
    rows = [{"location": x, "id": None} for x in ("a/clip.mp4", "b/clip.mp4", "clip_1.mp4")]
    names = output_names(rows)
    check_names(names, 3)
    assert names[2] == "clip_1"


def test_colliding_inputs_keep_every_video(tmp_path, capsys):
    """Three inputs whose names collided: each keeps its own frames, also with 2 workers
    writing at once, and a rerun finds all three done."""
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    inputs = {"a/clip.mp4": 20, "b/clip.mp4": 30, "clip_1.mp4": 40}  # frame counts differ
    for rel, n in inputs.items():
        write_video(str(tmp_path / rel), n_frames=n, fps=30, width=64, height=48)
    listing = tmp_path / "videos.txt"
    listing.write_text("".join(f"{tmp_path / rel}\n" for rel in inputs))
    dest = tmp_path / "out"
    argv = [str(listing), "--dest", str(dest), "--size", "32", "--workers", "2"]
    assert main(argv) == 0
    records = [json.loads(p.read_text()) for p in dest.glob("*.json") if p.name != RUN_FILE]
    assert sorted(r["location"] for r in records) == sorted(str(tmp_path / r) for r in inputs)
    for record in records:
        frames = np.load(dest / f"{record['name']}.npy")
        n = inputs[os.path.relpath(record["location"], tmp_path)]
        assert [frame_index(f) for f in frames] == list(range(n))
    capsys.readouterr()
    assert main(argv) == 0
    assert "0 videos" in (err := capsys.readouterr().err) and "3 already done" in err


def test_rerun_with_other_options_is_refused_then_overwritten(videos, tmp_path, capsys):
    dest = tmp_path / "out"
    (tmp_path / "out").mkdir()
    (dest / "notes.json").write_text("{}")  # the user's own file: never touched
    base = [videos["cfr.mp4"], "--dest", str(dest), "--workers", "0"]
    assert main([*base, "--fps", "1", "--size", "32"]) == 0
    run = json.loads((dest / RUN_FILE).read_text())
    assert run["tool"] == "video2numpy" and run["names"] == ["cfr"]
    assert run["sampling"]["fps"] == 1 and run["resize"]["size"] == 32
    capsys.readouterr()

    assert main([*base, "--fps", "10", "--size", "64"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line
    assert "sampling.fps: 1.0 there, 10.0 now" in err and "resize.size: 32 there, 64 now" in err
    assert "--overwrite" in err
    assert np.load(dest / "cfr.npy").shape == (3, 32, 32, 3)  # nothing was changed

    assert main([*base, "--fps", "10", "--size", "64", "--overwrite"]) == 0
    assert np.load(dest / "cfr.npy").shape == (30, 64, 64, 3)
    assert json.loads((dest / RUN_FILE).read_text())["resize"]["size"] == 64
    assert (dest / "notes.json").read_text() == "{}"
    # The decoder is not part of a run's identity: both give the same frames.
    assert main([*base, "--fps", "10", "--size", "64", "--backend", "decord"]) == 0


def test_changed_input_is_refused_and_overwrite_removes_only_listed_outputs(
    videos, tmp_path, capsys
):
    dest = tmp_path / "out"
    table = tmp_path / "videos.txt"
    table.write_text(f"{videos['cfr.mp4']}\n{videos['vfr.mp4']}\n")
    argv = [str(table), "--dest", str(dest), "--num-frames", "2", "--size", "32"]
    assert main([*argv, "--workers", "0"]) == 0
    (dest / "mine.npy").write_bytes(b"not ours")
    table.write_text(f"{videos['cfr.mp4']}\n")
    capsys.readouterr()
    assert main([*argv, "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "another input (2 rows there, 1 now)" in err and "--overwrite" in err
    assert main([*argv, "--workers", "0", "--overwrite"]) == 0
    assert sorted(os.listdir(dest)) == ["cfr.json", "cfr.npy", "mine.npy", RUN_FILE]


def test_outputs_without_a_run_file_are_not_mixed_in(videos, tmp_path, capsys):
    """A destination written before runs were recorded (or by something else) holds files
    under this input's names: their settings are unknown, so they are neither trusted nor
    silently replaced."""
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "CFR.json").write_text('{"status": "success"}')  # case-only difference too
    argv = [videos["cfr.mp4"], "--dest", str(dest), "--num-frames", "2", "--workers", "0"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "CFR.json" in err and RUN_FILE in err and "--overwrite" in err
    assert not (dest / RUN_FILE).exists()
    assert main([*argv, "--overwrite"]) == 0
    assert RUN_FILE in os.listdir(dest)


def test_another_tools_run_file_is_left_alone(videos, tmp_path, capsys):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / RUN_FILE).write_text('{"model": "ViT-B-32", "shards": 3}')  # clip-video-encode's
    argv = [videos["cfr.mp4"], "--dest", str(dest), "--num-frames", "2", "--workers", "0"]
    for extra in ([], ["--overwrite"]):
        assert main([*argv, *extra]) == 2
        assert "not a video2numpy run file" in capsys.readouterr().err
    assert json.loads((dest / RUN_FILE).read_text())["shards"] == 3


def test_overwrite_never_removes_outside_dest(videos, tmp_path):
    """The names a run file lists are checked before anything is removed by them."""
    dest = tmp_path / "out"
    argv = [videos["cfr.mp4"], "--dest", str(dest), "--num-frames", "2", "--workers", "0"]
    assert main(argv) == 0
    victim = tmp_path / "victim.json"
    victim.write_text("keep")
    run = json.loads((dest / RUN_FILE).read_text())
    run["names"] += ["../victim", "/etc/passwd", ".."]
    (dest / RUN_FILE).write_text(json.dumps(run))
    assert main([*argv, "--overwrite"]) == 0
    assert victim.read_text() == "keep"


# -- properties over any list of locations ---------------------------------------------------

_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
_PIECES = st.one_of(
    _TEXT,
    st.sampled_from(HOSTILE),
    st.builds(lambda a, b: f"{a}/{b}.mp4", _TEXT, _TEXT),
    st.builds(lambda a, q: f"https://h.org/{a}?{q}", _TEXT, _TEXT),
    st.builds(lambda a: a.upper(), _TEXT),
    st.just("x" * 260),
)
_PAIRS = st.lists(
    st.tuples(_PIECES, st.one_of(st.none(), _TEXT, st.sampled_from(HOSTILE))), max_size=30
)


@st.composite
def _ROWS(draw):  # noqa: N802 (a strategy)
    """Locations and ids, with some repeated as they are, case-swapped or with a row
    number appended: the near-collisions real collections have."""
    pairs = draw(_PAIRS)
    if pairs:
        for i in draw(st.lists(st.integers(0, len(pairs) - 1), max_size=6)):
            loc, ident = pairs[i]
            change = draw(st.sampled_from(["same", "swapcase", "numbered"]))
            if change == "swapcase":
                loc, ident = loc.swapcase(), ident and ident.swapcase()
            elif change == "numbered":
                loc, ident = f"{os.path.splitext(loc)[0]}_{i}.mp4", ident and f"{ident}_{i}"
            pairs.append((loc, ident))
    return pairs


@settings(max_examples=60, deadline=None)
@given(_ROWS())
def test_property_names_unique_safe_stable(pairs):
    rows = [{"location": loc, "id": ident or None} for loc, ident in pairs]
    names = output_names(rows)
    check_names(names, len(rows))
    assert output_names([dict(r) for r in rows]) == names
    # Every path built from a name lies directly inside the destination.
    dest = os.path.realpath("/dest")
    for name in names:
        for suffix in (".npy", ".json", ".npy.partial", ".json.partial"):
            path = os.path.realpath(os.path.join(dest, name + suffix))
            assert os.path.dirname(path) == dest


_MISSING = st.lists(
    st.one_of(_TEXT, st.sampled_from(HOSTILE)).map(lambda s: s.replace("\x00", "")),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(leaves=_MISSING)
def test_property_every_input_once_with_a_status(videos, tmp_path_factory, leaves):
    """Through the CLI: every row of a table of hostile locations (a real video among them)
    gets exactly one record with a status, and nothing is written outside --dest."""
    root = tmp_path_factory.mktemp("prop")
    missing = str(root / "missing")  # a folder prefix: never a URL, a YouTube id or a host
    locations = [videos["one_frame.mp4"]] + [f"{missing}/{leaf}" for leaf in leaves]
    pq.write_table(pa.table({"location": locations}), root / "in.parquet")
    dest = root / "out"
    code = main([str(root / "in.parquet"), "--dest", str(dest), "--workers", "0", "--size", "16"])
    assert code == 1  # the missing ones fail, the run goes on
    assert sorted(os.listdir(root)) == ["in.parquet", "out"]  # nothing beside --dest
    written = os.listdir(dest)
    records = [json.loads((dest / f).read_text()) for f in written if f.endswith(".json")]
    records = [r for r in records if "status" in r]
    assert sorted(r["index"] for r in records) == list(range(len(locations)))
    assert all(r["status"] in STATUSES for r in records)
    assert [r["location"] for r in sorted(records, key=lambda r: r["index"])] == [
        loc.strip() for loc in locations
    ]
    assert {f for f in written if f.endswith(".npy")} == {
        f"{r['name']}.npy" for r in records if r["status"] == "success"
    }
