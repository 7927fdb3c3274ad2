"""The summarisation benchmarks' annotations, in the files people have:

- TVSum (Song et al., CVPR 2015): ``ydata-tvsum50-anno.tsv`` (no header; one line per video
  and annotator: ``video_id<TAB>category<TAB>comma-separated per-frame scores 1-5``, 20
  annotators) and ``ydata-tvsum50-info.tsv`` (header ``category video_id title url length``,
  the length as ``m:ss``);
- SumMe (Gygli et al., ECCV 2014): one ``NAME.mat`` per video with ``user_score`` (frames x
  annotators; a frame an annotator kept is > 0), ``nFrames`` and ``FPS``;
- the h5 files the literature shares (``eccv16_dataset_tvsum_google_pool5.h5``, the SumMe
  one): per ``video_N`` group ``user_summary`` (annotators x frames, 0/1), ``change_points``
  (shots as inclusive ``[first, last]`` frames), ``n_frames`` and sometimes ``video_name``.

Each becomes an :class:`Annotation` per video; several sources of one benchmark merge (the
h5's shots and user summaries with TVSum's raw scores).
"""

from __future__ import annotations

import csv
import glob
import os
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Annotation:
    """One video's ground truth, in source frames."""

    video_id: str
    n_frames: int
    fps: float | None = None
    user_scores: np.ndarray | None = None  # (annotators, frames): importance, for correlations
    user_summaries: np.ndarray | None = None  # (annotators, frames) bool, when given as such
    change_points: np.ndarray | None = None  # (shots, 2) inclusive frame ranges
    title: str | None = None
    category: str | None = None
    benchmark: str = ""  # tvsum or summe: the F-score's default reduction over annotators
    names: set[str] = field(default_factory=set)  # every name the video is known by

    def __post_init__(self) -> None:
        self.names.add(self.video_id)


def read_tvsum(anno_path: str, info_path: str | None = None) -> list[Annotation]:
    """TVSum's annotation file (and its info file, for each video's title, category and
    length, from which its frame rate follows), videos in the file's order."""
    scores: dict[str, list[np.ndarray]] = {}
    categories: dict[str, str] = {}
    with open(anno_path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                raise ValueError(
                    f"{anno_path}:{number}: expected video_id, category and"
                    f" scores separated by tabs, got {len(parts)} fields"
                )
            video_id, category, values = parts
            try:
                row = np.array([float(v) for v in values.split(",")])
            except ValueError as exc:
                raise ValueError(f"{anno_path}:{number}: scores must be numbers: {exc}") from None
            scores.setdefault(video_id, []).append(row)
            categories[video_id] = category
    info = _read_tvsum_info(info_path) if info_path else {}
    videos = []
    for video_id, rows in scores.items():
        lengths = {len(r) for r in rows}
        if len(lengths) != 1:
            raise ValueError(
                f"{anno_path}: the annotators of {video_id} scored different"
                f" numbers of frames: {sorted(lengths)}"
            )
        n_frames = lengths.pop()
        meta = info.get(video_id, {})
        seconds = meta.get("seconds")
        videos.append(
            Annotation(
                video_id,
                n_frames,
                fps=n_frames / seconds if seconds else None,
                user_scores=np.stack(rows),
                title=meta.get("title"),
                category=meta.get("category") or categories[video_id],
                benchmark="tvsum",
            )
        )
    return videos


def _read_tvsum_info(path: str) -> dict[str, dict]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if rows and "video_id" not in rows[0]:
        raise ValueError(f"{path}: expected the header 'category video_id title url length'")
    return {
        r["video_id"]: {
            "title": r.get("title"),
            "category": r.get("category"),
            "seconds": _seconds(r.get("length")),
        }
        for r in rows
    }


def _seconds(length: str | None) -> float | None:
    """``m:ss`` or ``h:mm:ss`` (or plain seconds) as seconds."""
    if not length:
        return None
    try:
        value = 0.0
        for part in length.strip().split(":"):
            value = value * 60 + float(part)
    except ValueError:
        return None
    return value or None


def read_summe(folder: str) -> list[Annotation]:
    """SumMe's ground-truth ``.mat`` files of a folder (``GT/``), sorted by name."""
    from scipy.io import loadmat

    paths = sorted(glob.glob(os.path.join(folder, "*.mat")))
    if not paths:
        raise FileNotFoundError(f"no .mat files in {folder} (SumMe's GT folder)")
    videos = []
    for path in paths:
        mat = loadmat(path)
        if "user_score" not in mat:
            raise ValueError(
                f"{path}: no user_score (a SumMe ground-truth file has user_score, nFrames and FPS)"
            )
        users = np.asarray(mat["user_score"], dtype=np.float64).T  # (annotators, frames)
        n_frames = int(np.asarray(mat.get("nFrames", users.shape[1])).ravel()[0])
        fps = float(np.asarray(mat["FPS"]).ravel()[0]) if "FPS" in mat else None
        name = os.path.splitext(os.path.basename(path))[0]
        videos.append(
            Annotation(
                name,
                n_frames,
                fps,
                user_scores=users[:, :n_frames],
                user_summaries=users[:, :n_frames] > 0,
                benchmark="summe",
            )
        )
    return videos


def read_h5(path: str) -> list[Annotation]:
    """The shared h5 file's videos (``video_1``, ``video_2``, ... in numeric order)."""
    import h5py

    benchmark = "summe" if "summe" in os.path.basename(path).lower() else "tvsum"
    videos = []
    with h5py.File(path, "r") as h5:
        for key in sorted(h5.keys(), key=_natural):
            group = h5[key]
            n_frames = int(np.asarray(group["n_frames"][()]).ravel()[0])
            summaries = (
                np.asarray(group["user_summary"][()]) > 0 if "user_summary" in group else None
            )
            points = (
                np.asarray(group["change_points"][()], dtype=np.int64)
                if "change_points" in group
                else None
            )
            annotation = Annotation(
                key, n_frames, user_summaries=summaries, change_points=points, benchmark=benchmark
            )
            if "video_name" in group:
                name = group["video_name"][()]
                annotation.names.add(name.decode() if isinstance(name, bytes) else str(name))
            videos.append(annotation)
    return videos


def _natural(key: str) -> tuple:
    head, _, tail = key.rpartition("_")
    return (head, int(tail)) if tail.isdigit() else (key, 0)


def merge(primary: list[Annotation], h5: list[Annotation]) -> list[Annotation]:
    """The h5's shots and user summaries joined to the raw annotations: by ``video_name``
    when the h5 has it, else by position (the shared files list the videos in the order of
    the original annotation files: ``video_i`` is the i-th)."""
    by_name = {n: a for a in primary for n in a.names}
    for position, entry in enumerate(h5):
        target = next((by_name[n] for n in entry.names if n in by_name), None)
        if target is None and position < len(primary) and len(h5) == len(primary):
            target = primary[position]
        if target is None:
            primary.append(entry)
            continue
        if target.n_frames != entry.n_frames:
            raise ValueError(
                f"{entry.video_id} of the h5 file has {entry.n_frames} frames but"
                f" {target.video_id} has {target.n_frames}: not the same video;"
                " give the files of one benchmark"
            )
        target.names |= entry.names
        target.change_points = entry.change_points
        if entry.user_summaries is not None:
            target.user_summaries = entry.user_summaries
    return primary
