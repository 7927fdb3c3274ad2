"""What a run may touch: only its own names inside ``--dest`` (and its scratch folders), never
an input, a user's file, or anything outside ``--dest``; names built from input tars are made
safe and unique (DESIGN.md section 7)."""

import json
import os

import pyarrow.parquet as pq
import pytest
import webdataset as wds
from conftest import MODEL

from clip_video_encode.cli import main


def encode(src, dest, checkpoint, *extra):
    argv = [str(src), "--dest", str(dest), "--model", MODEL, "--pretrained", checkpoint]
    return main([*argv, "--fps", "2", "--quiet", "--batch-size", "16", "--workers", "1", *extra])


def write_tar(path, videos, keys=("v0",), name="one_frame.mp4"):
    with open(videos[name], "rb") as f:
        data = f.read()
    with wds.TarWriter(str(path)) as sink:
        for key in keys:
            sink.write({"__key__": key, "mp4": data, "txt": f"caption {key}"})
    return path


def tree(root):
    """Every file under ``root`` with its bytes (folders by their files)."""
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


def test_input_tars_inside_dest_are_refused_before_anything_is_written(
    videos, tmp_path, checkpoint, capsys
):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        write_tar(data / f"{i:05d}.tar", videos, keys=(f"v{i}",))
    before = tree(data)
    capsys.readouterr()
    assert encode(data / "{00000..00001}.tar", data, checkpoint) == 2
    err = capsys.readouterr().err
    assert "00000.tar" in err and "--dest" in err and "Traceback" not in err
    assert tree(data) == before  # the inputs are there, byte for byte, and nothing else


def test_a_table_inside_dest_at_an_output_name_is_refused(videos, tmp_path, checkpoint, capsys):
    dest = tmp_path / "out"
    dest.mkdir()
    src = dest / "00000.parquet"  # e.g. an earlier output's parquet, encoded again
    import pyarrow as pa

    pq.write_table(pa.table({"location": [videos["one_frame.mp4"]]}), src)
    before = tree(dest)
    assert encode(src, dest, checkpoint) == 2
    assert "00000.parquet" in capsys.readouterr().err
    assert tree(dest) == before


@pytest.mark.parametrize("output_format", ["webdataset", "files"])
def test_a_users_folder_named_like_a_shard_is_never_removed(
    videos, tmp_path, checkpoint, capsys, output_format
):
    src = write_tar(tmp_path / "train.tar", videos)
    dest = tmp_path / "out"
    (dest / "train").mkdir(parents=True)
    (dest / "train" / "notes.txt").write_text("mine")
    code = encode(src, dest, checkpoint, "--output-format", output_format)
    assert (dest / "train" / "notes.txt").read_text() == "mine"
    if output_format == "webdataset":  # not a name this format writes: left alone
        assert code == 0 and (dest / "train.tar").exists()
    else:  # the shard's folder would go there: refused, with the name
        assert code == 2
        err = capsys.readouterr().err
        assert str(dest / "train") in err and "Traceback" not in err
        assert os.listdir(dest / "train") == ["notes.txt"]


def test_a_users_file_at_an_output_name_is_refused_not_replaced(
    videos, tmp_path, checkpoint, capsys
):
    listing = tmp_path / "videos.txt"
    listing.write_text(videos["one_frame.mp4"] + "\n")
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "00000.parquet").write_bytes(b"someone else's parquet")
    (dest / "README.md").write_text("# my notes\n")
    capsys.readouterr()
    assert encode(listing, dest, checkpoint) == 2
    err = capsys.readouterr().err
    assert "00000.parquet" in err and "Traceback" not in err
    assert (dest / "00000.parquet").read_bytes() == b"someone else's parquet"
    assert (dest / "README.md").read_text() == "# my notes\n"
    assert sorted(os.listdir(dest)) == ["00000.parquet", "README.md"]


def test_replan_never_removes_a_users_file_at_a_new_shards_name(
    videos, tmp_path, checkpoint, capsys
):
    """The table grows: the new shard's names must be free, or the run is refused before
    run.json or any shard changes."""
    src, dest = tmp_path / "videos.csv", tmp_path / "out"
    src.write_text(f"location\n{videos['one_frame.mp4']}\n")
    args = ("--samples-per-shard", "1")
    assert encode(src, dest, checkpoint, *args) == 0
    (dest / "00001.tar").write_bytes(b"mine")
    before = tree(dest)
    src.write_text(f"location\n{videos['one_frame.mp4']}\n{videos['cfr.mp4']}\n")
    capsys.readouterr()
    assert encode(src, dest, checkpoint, *args, "--replan") == 2
    assert "00001.tar" in capsys.readouterr().err
    assert tree(dest) == before


@pytest.mark.parametrize("tar_name", ["..tar", "...tar", ".tar"])
def test_dot_tar_names_never_reach_outside_dest(videos, tmp_path, checkpoint, tar_name):
    """``..tar`` is shard ``.``, ``...tar`` shard ``..``: as folder names (--output-format
    files) they were ``DEST/.`` and ``DEST/..``, removed whole at the commit."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    src = write_tar(inputs / tar_name, videos)
    dest = tmp_path / "parent" / "out"
    dest.mkdir(parents=True)
    (tmp_path / "parent" / "sibling.txt").write_text("keep")
    (tmp_path / "keep.txt").write_text("keep")
    assert encode(src, dest, checkpoint, "--output-format", "files") == 0
    assert (tmp_path / "parent" / "sibling.txt").read_text() == "keep"
    assert (tmp_path / "keep.txt").read_text() == "keep"
    assert (inputs / tar_name).exists()
    stats = [json.loads((dest / n).read_text()) for n in os.listdir(dest)
             if n.endswith("_stats.json")]  # fmt: skip
    assert len(stats) == 1
    name = stats[0]["shard"]
    assert name not in (".", "..", "") and not name.startswith(".")
    assert os.path.isdir(dest / name) and stats[0]["source_shard"] == tar_name[: -len(".tar")]
    rows = pq.read_table(dest / f"{name}.parquet").to_pylist()
    assert [r["status"] for r in rows] == ["success"]
    assert rows[0]["source_shard"] == tar_name[: -len(".tar")]


def test_shard_names_are_unique_case_insensitively_and_keep_the_original(
    videos, tmp_path, checkpoint
):
    """``A.tar`` and ``a.tar`` (one name on macOS or Windows), ``x y.tar`` and ``x_y.tar``
    (one name once made safe): four shards, four names, none the same but for case."""
    names = ["A.tar", "a.tar", "x y.tar", "x_y.tar"]
    srcs = []
    for i, name in enumerate(names):
        folder = tmp_path / "in" / str(i)
        folder.mkdir(parents=True)
        srcs.append(str(write_tar(folder / name, videos, keys=(f"k{i}",))))
    dest = tmp_path / "out"
    assert encode("::".join(srcs), dest, checkpoint) == 0
    stats = {}
    for n in os.listdir(dest):
        if n.endswith("_stats.json"):
            s = json.loads((dest / n).read_text())
            stats[s["shard"]] = s
    assert len({n.lower() for n in stats}) == 4
    originals = sorted(s.get("source_shard", s["shard"]) for s in stats.values())
    assert originals == sorted(n[: -len(".tar")] for n in names)
    keys = sorted(r["key"] for n in stats for r in pq.read_table(dest / f"{n}.parquet").to_pylist())
    assert keys == ["k0", "k1", "k2", "k3"]


def test_the_guard_refuses_paths_outside_dest(tmp_path):
    from clip_video_encode.destination.owned import OutsideDestination, inside

    dest = str(tmp_path / "out")
    os.makedirs(dest)
    assert inside(dest, f"{dest}/00000.tar") == f"{dest}/00000.tar"
    for bad in (dest, f"{dest}/..", f"{dest}/../x", f"{dest}/./..", str(tmp_path / "outside"),
                f"{dest}/a/../../x", f"{dest}/a\0b", f"{dest}x/y"):  # fmt: skip
        with pytest.raises(OutsideDestination):
            inside(dest, bad)
    os.symlink(tmp_path, f"{dest}/link")  # a link inside dest that leads out of it
    with pytest.raises(OutsideDestination):
        inside(dest, f"{dest}/link/x")


def test_videos_kept_where_a_shard_folder_goes_are_refused(videos, tmp_path, checkpoint, capsys):
    """--output-format files writes the folder DEST/00000: a table whose videos lie in it
    would have them removed by the commit (or a rerun's clean-up)."""
    import shutil

    dest = tmp_path / "out"
    (dest / "00000").mkdir(parents=True)
    video = dest / "00000" / "clip.mp4"
    shutil.copy(videos["one_frame.mp4"], video)
    src = tmp_path / "videos.csv"
    src.write_text(f"location\n{video}\n")
    before = tree(tmp_path)
    capsys.readouterr()
    assert encode(src, dest, checkpoint, "--output-format", "files") == 2
    err = capsys.readouterr().err
    assert "clip.mp4" in err and "--dest" in err
    assert tree(tmp_path) == before


def test_committed_shards_the_plan_does_not_name_are_refused(videos, tmp_path, checkpoint, capsys):
    """An earlier version named the shard of p.1.tar 'p.1'; today's names it 'p_1'. Resuming
    would write p_1 beside the committed p.1, and every reader would see its rows twice."""
    src = tmp_path / "src"
    src.mkdir()
    write_tar(src / "p.1.tar", videos)
    dest = tmp_path / "out"
    assert encode(src / "p.1.tar", dest, checkpoint) == 0
    for ext in (".tar", ".parquet", "_stats.json"):
        os.rename(dest / f"p_1{ext}", dest / f"p.1{ext}")
    stats = json.loads((dest / "p.1_stats.json").read_text())
    (dest / "p.1_stats.json").write_text(json.dumps({**stats, "shard": "p.1"}))
    before = tree(dest)
    capsys.readouterr()
    assert encode(src / "p.1.tar", dest, checkpoint) == 2
    err = capsys.readouterr().err
    assert "does not plan (p.1)" in err and "another --dest" in err, err
    assert tree(dest) == before
