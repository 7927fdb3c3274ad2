"""``clip-video-summarize eval``: a summariser's frame scores (from an embedding dataset of the
benchmark's videos, or a JSON file) against TVSum or SumMe annotations, with the human and
random baselines beside it. Exit code 0, or 2 for a usage error.

Kendall's tau and Spearman's rho need no shots and are always reported; the F-score is
reported over the videos whose shots are known (the h5 file's change points, ``--shots
fixed:SECONDS`` with a frame rate, or KTS on a ``--dataset``), and a note says which are
not and how to give them: TVSum's tsv files alone give neither shots nor a frame rate."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from video2numpy.examples import with_examples

from ..models.encoder import EncoderLoadError
from .annotations import Annotation, merge, read_h5, read_summe, read_tvsum
from .evaluate import (
    EvalOptions,
    annotation_bounds,
    evaluate_video,
    human_video,
    mean_of,
    mean_over_splits,
    random_video,
    source_frame_scores,
)
from .summary import fixed_seconds

PROG = "clip-video-summarize eval"


def parse(argv: Sequence[str]) -> argparse.Namespace:
    from .options import add_summary_options

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Keyshot F-score, Kendall's tau and Spearman's rho of summaries against"
        " TVSum / SumMe annotations, beside the human (leave-one-out) and random baselines.",
        **with_examples(
            "clip-video-summarize eval --tvsum-anno ydata-tvsum50-anno.tsv --baselines random",
            "clip-video-summarize eval --tvsum-anno tvsum-anno.tsv --tvsum-info tvsum-info.tsv"
            " --dataset tvsum --query-field title",
        ),
    )
    truth = parser.add_argument_group("annotations")
    truth.add_argument("--tvsum-anno", help="ydata-tvsum50-anno.tsv")
    truth.add_argument("--tvsum-info", help="ydata-tvsum50-info.tsv (titles, lengths)")
    truth.add_argument("--summe-gt", metavar="DIR", help="SumMe's GT folder of .mat files")
    truth.add_argument(
        "--h5",
        action="append",
        default=[],
        help="the literature's h5 file (shots, user summaries); with TVSum's"
        " or SumMe's own files it adds their shots",
    )
    method = parser.add_argument_group("the method")
    method.add_argument(
        "--dataset", help="an embedding dataset of the benchmark's videos (matched by key or id)"
    )
    method.add_argument("--scores", help="JSON {video_id: [a score per source frame]}")
    method.add_argument("--name", help="the method's name in the results")
    method.add_argument(
        "--query-field",
        choices=["title", "category"],
        help="each video's query from TVSum's info file",
    )
    add_summary_options(parser)
    parser.add_argument(
        "--f-mode",
        choices=["auto", "avg", "max"],
        default="auto",
        help="F-score over annotators: avg (TVSum), max (SumMe), auto: by benchmark",
    )
    parser.add_argument(
        "--splits",
        help='JSON [{"train_keys": [...], "test_keys": [...]}, ...]:'
        " the mean over the splits' test videos",
    )
    parser.add_argument(
        "--baselines", default="human,random", help="human,random (default), one of them, or none"
    )
    parser.add_argument("--random-draws", type=int, default=100)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args(argv)


def load_annotations(args: argparse.Namespace) -> list[Annotation]:
    if args.tvsum_anno and args.summe_gt:
        raise ValueError("give one benchmark at a time (--tvsum-anno or --summe-gt)")
    videos: list[Annotation] = []
    if args.tvsum_anno:
        videos = read_tvsum(args.tvsum_anno, args.tvsum_info)
    elif args.tvsum_info:
        raise ValueError("--tvsum-info goes with --tvsum-anno")
    if args.summe_gt:
        videos = read_summe(args.summe_gt)
    for path in args.h5:
        videos = merge(videos, read_h5(path)) if videos else read_h5(path)
    if not videos:
        raise ValueError("no annotations: give --tvsum-anno (and --tvsum-info), --summe-gt or --h5")
    return videos


def find(annotations: list[Annotation], name: str) -> Annotation | None:
    for a in annotations:
        if name in a.names:
            return a
    return None


def from_scores_file(path: str, annotations: list[Annotation]) -> dict[str, np.ndarray]:
    with open(path, encoding="utf-8") as f:
        given = json.load(f)
    scores = {}
    for name, values in given.items():
        annotation = find(annotations, str(name))
        if annotation is None:
            continue
        values = np.asarray(values, dtype=np.float64)
        if len(values) != annotation.n_frames:
            raise ValueError(
                f"{path}: {name} has {len(values)} scores but the video has"
                f" {annotation.n_frames} frames (one score per source frame)"
            )
        scores[annotation.video_id] = values
    return scores


def from_dataset(args: argparse.Namespace, annotations: list[Annotation]) -> tuple[dict, dict]:
    """Per annotated video found in the dataset: its scores over the source frames and its
    evaluation shots."""
    from ..read import iter_samples
    from .options import embed_queries
    from .videos import frame_scores_of

    queries, contrast = embed_queries(args.dataset, args)
    per_video: dict[str, np.ndarray] = {}
    if args.query_field:
        texts = {a.video_id: getattr(a, args.query_field) for a in annotations}
        missing = [v for v, t in texts.items() if not t]
        if missing:
            raise ValueError(
                f"--query-field {args.query_field}: no {args.query_field} for"
                f" {', '.join(missing[:5])} (give TVSum's info file)"
            )
        ids = list(texts)
        embedded, contrast = embed_queries(args.dataset, args, [texts[v] for v in ids])
        per_video = {v: embedded[i : i + 1] for i, v in enumerate(ids)}
    scores, bounds = {}, {}
    for key, embeddings, meta in iter_samples(args.dataset):
        annotation = find(annotations, key) or find(annotations, str(meta.get("id")))
        if annotation is None or annotation.video_id in scores:
            continue
        embeddings = np.asarray(embeddings, dtype=np.float32)
        times = np.asarray(meta["timestamps"], dtype=np.float64)
        # The record's rate is the decoder's (exact); TVSum's info only has m:ss lengths.
        fps = meta.get("source_fps") or annotation.fps or None
        if not fps and meta.get("duration"):
            fps = annotation.n_frames / float(meta["duration"])
        frame = frame_scores_of(
            embeddings, per_video.get(annotation.video_id, queries), args.combine, contrast
        )
        scores[annotation.video_id] = source_frame_scores(frame, times, annotation.n_frames, fps)
        bounds[annotation.video_id] = shots_or_why(
            annotation, args.shots, fps, embeddings, times, args.max_shot_seconds
        )
    return scores, bounds


def shots_or_why(annotation: Annotation, *args, **kwargs) -> np.ndarray | str:
    """The video's evaluation shots (:func:`annotation_bounds`), or why they are unknown:
    then the video has no F-score, while its rank correlations stand."""
    try:
        return annotation_bounds(annotation, *args, **kwargs)
    except ValueError as exc:
        return str(exc)


def missing_shots_note(bounds: dict[str, np.ndarray | str], total: int) -> str | None:
    """One line: which videos have no F-score, the first reason, and how to give shots."""
    missing = [v for v, b in bounds.items() if isinstance(b, str)]
    if not missing:
        return None
    names = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
    return (
        f"{PROG}: no F-score for {len(missing)} of {total} videos ({names}): their shots are"
        f" unknown ({bounds[missing[0]]}). Kendall's tau and Spearman's rho need no shots and"
        " cover every video; for F give the h5 file's change points (--h5), or --shots"
        " fixed:SECONDS with the frame rate (--tvsum-info), or --shots kts on a --dataset"
    )


def read_splits(path: str) -> list[set[str]]:
    with open(path, encoding="utf-8") as f:
        splits = json.load(f)
    if not isinstance(splits, list) or not all("test_keys" in s for s in splits):
        raise ValueError(f'{path}: expected [{{"train_keys": [...], "test_keys": [...]}}, ...]')
    # Keys are often written as "path/of/file.h5/video_3": the video is the last part.
    return [{str(k).rstrip("/").rsplit("/", 1)[-1] for k in s["test_keys"]} for s in splits]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(list(sys.argv[1:] if argv is None else argv))
    try:
        fixed_seconds(args.shots)
        baselines = [] if args.baselines == "none" else args.baselines.split(",")
        if set(baselines) - {"human", "random"}:
            raise ValueError(f"--baselines: human, random or none, got {args.baselines!r}")
        if args.dataset and args.scores:
            raise ValueError("give --dataset or --scores, not both")
        if args.contrast and not (args.query or args.query_field):
            raise ValueError("--contrast needs a --query or --query-field")
        annotations = load_annotations(args)
        options = EvalOptions(args.budget, args.f_mode, args.random_draws, args.select)
        method, predictions, bounds = None, {}, {}
        if args.scores:
            method = args.name or os.path.splitext(os.path.basename(args.scores))[0]
            predictions = from_scores_file(args.scores, annotations)
        elif args.dataset:
            method = args.name or "clip"
            predictions, bounds = from_dataset(args, annotations)
        elif not baselines:
            raise ValueError("nothing to evaluate: give --dataset or --scores, or baselines")
        if method and not predictions:
            raise ValueError(
                "no annotated video has a prediction: the dataset's keys or ids,"
                " or the scores file's names, must be the benchmark's video ids"
            )
        videos = [a for a in annotations if not method or a.video_id in predictions]
        for a in videos:
            if a.video_id not in bounds:
                bounds[a.video_id] = shots_or_why(
                    a, args.shots, a.fps, max_shot_seconds=args.max_shot_seconds
                )
        splits = read_splits(args.splits) if args.splits else None
    except (EncoderLoadError, FileNotFoundError, ValueError, KeyError, OSError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    if method and len(videos) < len(annotations) and not args.quiet:
        left = [a.video_id for a in annotations if a.video_id not in predictions]
        print(
            f"{PROG}: {len(left)} annotated videos have no prediction and are left out:"
            f" {', '.join(left[:10])}{' ...' if len(left) > 10 else ''}",
            file=sys.stderr,
        )
    note = missing_shots_note({a.video_id: bounds[a.video_id] for a in videos}, len(videos))
    if note and not args.quiet:
        print(note, file=sys.stderr)
    rows: dict[str, dict[str, dict]] = {m: {} for m in [method, *baselines] if m}
    for number, a in enumerate(
        tqdm(videos, unit="video", desc="eval", disable=True if args.quiet else None)
    ):
        b = bounds[a.video_id]
        b = None if isinstance(b, str) else b
        if method:
            rows[method][a.video_id] = evaluate_video(a, predictions[a.video_id], b, options)
        if "human" in rows:
            human = human_video(a, b, options)
            if human is not None:
                rows["human"][a.video_id] = human
        if "random" in rows:
            rows["random"][a.video_id] = random_video(a, b, options, number)
    results = {}
    for name, per_video in rows.items():
        if splits is None:
            results[name] = mean_of(list(per_video.values()))
            continue
        per_split = []
        for test in splits:
            chosen = [r for a in videos if a.names & test for r in [per_video.get(a.video_id)] if r]
            per_split.append(mean_of(chosen))
        results[name] = mean_over_splits(per_split)
    if args.json:
        print(json.dumps(results))
    else:
        print(
            f"{'method':<12} {'F-score':>8} {'Kendall tau':>12} {'Spearman rho':>13} {'videos':>7}"
        )
        for name, r in results.items():
            cells = [
                f"{r[m]:.4f}" if r[m] is not None else "-"
                for m in ("f_score", "kendall_tau", "spearman_rho")
            ]
            print(f"{name:<12} {cells[0]:>8} {cells[1]:>12} {cells[2]:>13} {r['n_videos']:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
