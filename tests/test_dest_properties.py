"""Property tests of what a run may touch (DESIGN.md section 7), over generated hostile input
tar names, sample keys and files a user keeps in and around ``--dest``:

- every path the run writes, renames or removes lies inside ``--dest`` or one of its own
  scratch folders (every file operation of the process is seen, through an audit hook);
- it removes or renames nothing it did not create, and every file that was there before is
  there after, byte for byte;
- a run either refuses with a message before writing anything, or writes shards whose names
  are unique (also without regard to case) and in which every input sample appears exactly
  once, with a status.
"""

import json
import os
import shutil
import sys
import tempfile

import pyarrow.parquet as pq
import pytest
import webdataset as wds
from conftest import MODEL
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import event as note_event
from hypothesis import strategies as st

from clip_video_encode.destination.owned import inside, partial_names, run_names, shard_files
from clip_video_encode.plan.tars import MAX_SHARD_NAME, shard_name, shard_names

SUFFIXES = [s for s in run_names(["N"], "webdataset") | run_names(["N"], "files") if "N" in s]
HOSTILE = [".", "..", "...", "", " ", "A", "a", "-rf", "x.parquet", "x_stats", "_lease", "run",
           "README", "00000", "train", "é", "e\u0301", "名前", "a b", "a_b", "x" * 240,
           "con", "x.tar", "\\", "a\\b", "*", "[a]", "a?b", "#", "%2e%2e"]  # fmt: skip


def names(forbidden: str = "/\0"):
    """Base names of files: the hostile ones above and generated text without ``forbidden``."""
    chars = st.characters(blacklist_categories=("Cs",), blacklist_characters=forbidden)
    text = st.text(chars, max_size=24)
    return st.one_of(st.sampled_from([h for h in HOSTILE if not set(h) & set(forbidden)]), text)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(names(), min_size=1, max_size=8), st.sampled_from(["webdataset", "files"]))
def test_shard_names_are_safe_unique_stable_and_inside_dest(bases, output_format):
    urls = [f"/in/{i}/{b}.tar" for i, b in enumerate(bases)]
    named = shard_names(urls)
    assert named == shard_names(urls)  # the same input, the same names
    assert [o for _, o in named] == [shard_name(u) for u in urls]  # the original is kept
    lowered = [n.lower() for n, _ in named]
    assert len(set(lowered)) == len(named)
    dest = tempfile.gettempdir() + "/dest"
    for name, _ in named:
        assert name[:1].isalnum() and all(c.isascii() and (c.isalnum() or c in "_-") for c in name)
        assert len(name) <= MAX_SHARD_NAME + 1
        for leaf in (*shard_files(name, output_format), *partial_names(name, output_format)):
            assert len(leaf.encode()) < 255
            assert inside(dest, f"{dest}/{leaf}") == f"{dest}/{leaf}"
    # A name of one shard is never another shard's file (a folder ``x.parquet`` of one shard
    # was the parquet of shard ``x``).
    files = [f for n, _ in named for f in (*shard_files(n, output_format),
                                           *partial_names(n, output_format))]  # fmt: skip
    assert len(set(files)) == len(files)


@settings(max_examples=100, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(st.lists(st.sampled_from(["a", "..", ".", "", "b", "link", "link2"]), max_size=5))
def test_the_guard_never_lets_a_path_resolve_outside_dest(tmp_path, parts):
    root = tmp_path / "root"
    dest = root / "dest"
    (dest / "a").mkdir(parents=True, exist_ok=True)
    if not (dest / "link").is_symlink():
        os.symlink(root, dest / "link")  # leads out
        os.symlink(dest / "a", dest / "link2")  # stays in
    path = str(dest) + "/" + "/".join(parts)
    try:
        inside(str(dest), path)
    except ValueError:
        return
    real, real_dest = os.path.realpath(path), os.path.realpath(dest)
    assert real.startswith(real_dest + os.sep)


# -- whole runs, every file operation audited ---------------------------------------------------

_AUDIT: list | None = None  # (event, path) while a run is audited
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _hook(event, args):
    if _AUDIT is None:
        return
    if event == "open":
        path, mode, flags = args
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else flags & _WRITE_FLAGS
        if writes and isinstance(path, (str, bytes)):
            _AUDIT.append(("write", os.fsdecode(path)))
    elif event in ("os.remove", "os.rmdir", "os.mkdir", "os.truncate", "shutil.rmtree"):
        dir_fd = args[-1] if event != "os.truncate" else None
        # dir_fd: a name relative to an open folder (shutil.rmtree's own steps, inside the
        # folder whose removal is seen as one event)
        if isinstance(args[0], (str, bytes)) and dir_fd in (None, -1):
            _AUDIT.append((event, os.fsdecode(args[0])))
    elif event in ("os.rename", "os.replace", "os.link", "os.symlink", "shutil.move",
                   "shutil.copyfile", "shutil.copytree"):  # fmt: skip
        _AUDIT.append((event + ":src", os.fsdecode(args[0])))
        _AUDIT.append((event, os.fsdecode(args[1])))


sys.addaudithook(_hook)


def snapshot(root):
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                out[path] = f.read()
    return out


def within(path, root):
    real, base = os.path.realpath(path), os.path.realpath(root)
    return real == base or real.startswith(base + os.sep)


KEYS = st.lists(st.sampled_from(["k", "K", "a b", "é", "x_y", "x-y", "0", "名"]), min_size=1,
                max_size=3, unique=True)  # fmt: skip


@st.composite
def layouts(draw):
    """Input tars (base name, keys), files a user keeps in and around dest, and where the
    inputs lie."""
    bases = draw(st.lists(names("/\0{},:\\"), min_size=1, max_size=3))
    bases = [b for b in bases if len(f"{b}.tar".encode()) <= 250]
    tars = [(b, draw(KEYS)) for b in bases]
    derived = [f"{b}{s}" for b in bases for s in ("", ".tar", ".parquet", "_stats.json")]
    fixed = ["README.md", "run.json", "_lease.json", "splits.csv", "notes.txt", "00000.tar",
             "train", "shard__", "shard_", "a", "A.tar"]  # fmt: skip
    user = draw(st.lists(st.sampled_from(derived + fixed), max_size=3, unique=True))
    user = [u for u in user if u not in (".", "..", "") and not u.endswith(".partial")
            and len(u.encode()) < 250]  # fmt: skip
    return tars, user, draw(st.booleans()), draw(st.sampled_from(["webdataset", "files"]))


def run(job, encoder):
    """Run ``job``: "done", or "refused" when it stopped on its input or destination."""
    from clip_video_encode.destination.lease import DestinationBusy
    from clip_video_encode.execute.local import encode_dataset
    from clip_video_encode.plan.run_file import RunMismatch

    try:
        encode_dataset(job, encoder=encoder, progress=False)
    except (ValueError, RunMismatch, DestinationBusy, FileNotFoundError) as exc:
        assert str(exc), "an error without a message"
        return "refused"
    return "done"


def in_scratch(path):
    """Whether ``path`` lies in a scratch folder of this tool (named by its prefix, in the
    temporary folder; gone by the time the run is checked)."""
    tmp = os.path.realpath(tempfile.gettempdir())
    real = os.path.realpath(path)
    if not real.startswith(tmp + os.sep):
        return False
    return real[len(tmp) + 1 :].startswith(("clip-video-encode-", "video2numpy-"))


def check_audit(events, dest, created):
    """Every path written, renamed or removed lies in ``dest`` or a scratch folder; what is
    removed or renamed away was created by the run (or lies in something it created)."""
    for event, path in events:
        assert within(path, dest) or in_scratch(path), f"{event} {path}: outside"
        if event in ("write", "os.mkdir") or event in ("os.rename", "os.replace", "shutil.move"):
            created.add(os.path.realpath(path))
        elif event in ("os.remove", "os.rmdir", "shutil.rmtree") or event.endswith(":src"):
            real = os.path.realpath(path)
            assert any(real == c or real.startswith(c + os.sep) for c in created), (
                f"{event} {path}: not created by the run"
            )


@pytest.mark.slow
@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])  # fmt: skip
@given(layouts())
def test_runs_touch_only_their_own_names(videos, encoder, layout):
    check_run(videos, encoder, layout)


@settings(max_examples=8, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])  # fmt: skip
@given(layouts())
def test_runs_touch_only_their_own_names_quick(videos, encoder, layout):
    check_run(videos, encoder, layout)


def check_run(videos, encoder, layout):
    global _AUDIT
    from clip_video_encode.models.encoder import EncoderOptions
    from clip_video_encode.plan.job import EncodeJob
    from video2numpy import FrameOptions, Sampling

    tars, user, inputs_in_dest, output_format = layout
    assume(tars)
    top = tempfile.mkdtemp(prefix="dest-properties-")
    try:
        scratch = os.path.join(top, "tmp")
        parent = os.path.join(top, "parent")
        dest = os.path.join(parent, "dest")
        os.makedirs(scratch)
        os.makedirs(dest)
        with open(os.path.join(parent, "sibling.txt"), "w") as f:
            f.write("the user's")
        for name in user:
            with open(os.path.join(dest, name), "wb") as f:
                f.write(f"the user's {name}".encode())
        with open(videos["one_frame.mp4"], "rb") as f:
            video = f.read()
        srcs = []
        for i, (base, keys) in enumerate(tars):
            folder = os.path.join(dest if inputs_in_dest else os.path.join(top, "in"), str(i))
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, f"{base}.tar")
            with wds.TarWriter(path) as sink:
                for key in keys:
                    sink.write({"__key__": key, "mp4": video, "json": {"k": key}})
            srcs.append(path)
        if inputs_in_dest and tars and user:  # an input where the run writes: e.g. DEST/00000.tar
            shutil.copy(srcs[0], os.path.join(dest, "00000.tar"))
            srcs.append(os.path.join(dest, "00000.tar"))
            tars = [*tars, (None, tars[0][1])]
        before = snapshot(top)
        job = EncodeJob(
            src="::".join(srcs), dest=dest, frames=FrameOptions(Sampling(fps=2)),
            encoder=EncoderOptions(MODEL, pretrained="ignored", precision="fp32"),
            workers=0, output_format=output_format,
        )  # fmt: skip
        created: set[str] = set()
        outcomes = []
        for attempt in range(2):  # a run, then a rerun of the same command
            _AUDIT = []
            try:
                outcomes.append(run(job, encoder))
            finally:
                events, _AUDIT = _AUDIT, None
            check_audit(events, dest, created)
            after = snapshot(top)
            for path, data in before.items():
                assert after.get(path) == data, f"{path} changed or removed"
            if outcomes[-1] == "refused":
                assert after == before  # nothing written at all
                break
            if attempt == 0:  # as if the next run found a commit cut short: a marker gone
                markers = sorted(n for n in os.listdir(dest)
                                 if n.endswith("_stats.json") and n not in user)  # fmt: skip
                os.remove(os.path.join(dest, markers[0]))
        note_event(f"outcomes: {outcomes}")  # --hypothesis-show-statistics shows the mix
        if outcomes[0] == "done":
            check_rows(dest, tars, output_format, user)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def check_rows(dest, tars, output_format, user):
    stats = []
    for name in os.listdir(dest):
        if name.endswith("_stats.json") and name not in user:
            with open(os.path.join(dest, name)) as f:
                stats.append(json.load(f))
    shard_list = [s["shard"] for s in stats]
    assert len({s.lower() for s in shard_list}) == len(shard_list) == len(tars)
    expected = sorted((shard_name(f"{b}.tar") if b is not None else "00000", k)
                      for b, keys in tars for k in keys)  # fmt: skip
    seen = []
    for s in stats:
        data, parquet, _ = shard_files(s["shard"], output_format)
        assert os.path.exists(os.path.join(dest, data))
        rows = pq.read_table(os.path.join(dest, parquet)).to_pylist()
        assert all(r["status"] for r in rows) and len(rows) == s["count"]
        for r in rows:
            seen.append((s.get("source_shard", s["shard"]), r.get("source_key") or r["key"]))
    assert sorted(seen) == expected
