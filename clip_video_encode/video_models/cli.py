"""``clip-video-train``, ``clip-video-pool`` and ``clip-video-eval``.

Text embeddings (captions, class names) come from the dataset's own model as ``run.json``
names it; ``--pretrained`` overrides the weights under the same rules as ``clip-video-search``
(the weights loaded must have ``run.json``'s ``weights_sha256``; random weights only where it
records their ``weights_seed``). Exit code 0 on success, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from video2numpy.examples import with_examples

from ..models.encoder import EncoderLoadError, resolve_device
from ..read import read_run
from ..search.query import query_encoder, query_weights

DEFAULT_LENGTH = 32
MAX_FRAMES_HELP = ("frames per video; longer ones are thinned evenly (center: the middle frame"
                   " by time of all of them) (32)")  # fmt: skip


def _common(parser: argparse.ArgumentParser, aggregator: str | None = "mean") -> None:
    parser.add_argument("dataset", help="a clip-video-encode destination (folder or URL)")
    if aggregator is not None:
        parser.add_argument(
            "--aggregator",
            default=aggregator,
            help=f"mean, max, center, or a checkpoint from clip-video-train ({aggregator})",
        )
    parser.add_argument("--max-frames", type=int, default=DEFAULT_LENGTH,
                        help=MAX_FRAMES_HELP)  # fmt: skip
    parser.add_argument("--device", default="auto", help="cpu, cuda, ... (auto)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _text_model(dataset: str, pretrained: str | None, device: str):
    """The dataset's run, its text encoder and the weights it was loaded with."""
    run = read_run(dataset)
    weights = query_weights(run, pretrained)
    return run, query_encoder(run, pretrained, device), weights


def _dim(run: dict) -> int:
    return int(run["embed_dim"])


def _fail(prog: str, exc: Exception) -> int:
    print(f"{prog}: {exc}", file=sys.stderr)
    return 2


def train_main(argv: Sequence[str] | None = None) -> int:
    from .data import TextCache
    from .train import TrainOptions, train

    parser = argparse.ArgumentParser(
        prog="clip-video-train",
        description="Train an aggregator of frame embeddings against the captions (InfoNCE).",
        **with_examples(
            "clip-video-train msrvtt_train --out aggregator --aggregator attention --epochs 10",
            "clip-video-train webvid --out aggregator --aggregator cross-attention --max-frames 32",
        ),
    )
    _common(parser, aggregator=None)
    parser.add_argument("--aggregator", default="attention",
                        choices=["wavg", "attention", "cross-attention"])  # fmt: skip
    parser.add_argument("--out", required=True, help="the checkpoint (agg.pt); .csv, .png beside")
    defaults = TrainOptions()
    for name in ("epochs", "batch_size", "seed", "layers", "heads", "queries"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int,
                            default=getattr(defaults, name))  # fmt: skip
    for name in ("lr", "weight_decay", "dropout", "val_fraction"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float,
                            default=getattr(defaults, name))  # fmt: skip
    parser.add_argument(
        "--caption-column",
        default="caption",
        help="the parquet column of captions (a list column: one at random)",
    )
    parser.add_argument("--pretrained", help="weights of the text tower (default: run.json's)")
    parser.add_argument("--restart", action="store_true", help="do not resume --out")
    parser.add_argument(
        "--stop-after-epoch",
        type=int,
        help="end this run after that epoch (train in slices under a job time limit; the same"
        " command resumes)",
    )
    args = parser.parse_args(argv)
    options = TrainOptions(
        aggregator=args.aggregator, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, max_frames=args.max_frames, seed=args.seed,
        layers=args.layers, heads=args.heads, queries=args.queries, dropout=args.dropout,
        caption_column=args.caption_column, val_fraction=args.val_fraction,
    )  # fmt: skip
    progress = False if args.quiet else None
    try:
        device = resolve_device(args.device)
        run, encoder, weights = _text_model(args.dataset, args.pretrained, device)
        cache = TextCache(args.dataset, encoder, run, weights)
        last = train(args.dataset, args.out, options, cache, _dim(run), device, progress,
                     args.restart, lambda m: print(m, file=sys.stderr),
                     args.stop_after_epoch)  # fmt: skip
    except (EncoderLoadError, ValueError, FileNotFoundError) as exc:
        return _fail("clip-video-train", exc)
    print(json.dumps(last, allow_nan=True))
    return 0


def pool_main(argv: Sequence[str] | None = None) -> int:
    from .evaluate import Pooler
    from .pool import pool_dataset

    parser = argparse.ArgumentParser(
        prog="clip-video-pool",
        description="One embedding per video, as a parquet file.",
        **with_examples(
            "clip-video-pool embeddings --out pooled.parquet",
            "clip-video-pool embeddings --aggregator aggregator/best.pt --out pooled.parquet",
        ),
    )
    _common(parser)
    parser.add_argument("--out", required=True, help="videos.parquet (local or fsspec URL)")
    parser.add_argument("--batch-size", type=int, default=1024)
    args = parser.parse_args(argv)
    try:
        run = read_run(args.dataset)
        pooler = Pooler(args.aggregator, _dim(run), args.max_frames, resolve_device(args.device))
        n = pool_dataset(args.dataset, pooler, args.out, args.batch_size,
                         False if args.quiet else None)  # fmt: skip
    except (ValueError, FileNotFoundError) as exc:
        return _fail("clip-video-pool", exc)
    print(f"clip-video-pool: {n} videos -> {args.out}", file=sys.stderr)
    return 0


def eval_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="clip-video-eval",
        description="Zero-shot classification, text-video retrieval, linear probes.",
        **with_examples(
            "clip-video-eval zeroshot k400_val --labels k400_classes.txt",
            "clip-video-eval retrieval msrvtt_test --aggregator aggregator/best.pt",
            "clip-video-eval linear-probe k400_train k400_val --label-column label",
        ),
    )
    sub = parser.add_subparsers(dest="protocol", required=True)
    zs = sub.add_parser("zeroshot", help="classify by the class names' text embeddings")
    _common(zs)
    labels = zs.add_mutually_exclusive_group(required=True)
    labels.add_argument("--labels", help="class names, one per line (labels.txt)")
    labels.add_argument("--label-column", help="classes: the distinct values of this field")
    zs.add_argument("--label-field", help="each video's class with --labels (caption)")
    zs.add_argument("--templates", default="kinetics", help="kinetics, none, or a file (kinetics)")
    zs.add_argument("--score", choices=["frame-softmax", "pooled"], default="frame-softmax")
    zs.add_argument("--pretrained")
    zs.add_argument("--json", action="store_true")
    rt = sub.add_parser("retrieval", help="text-to-video and video-to-text retrieval")
    _common(rt)
    rt.add_argument("--caption-column", default=None,
                    help="the parquet column of captions (default: captions if present, else"
                    " caption); a list column gives several per video")  # fmt: skip
    rt.add_argument("--split", help="only the videos of this split (e.g. test)")
    rt.add_argument("--pretrained")
    rt.add_argument("--json", action="store_true")
    lp = sub.add_parser("linear-probe", help="logistic regression on pooled embeddings")
    lp.add_argument("train", help="the training dataset")
    lp.add_argument("val", help="the evaluation dataset (may be the same: see --split)")
    lp.add_argument("--aggregator", default="center", help="(center: LAION's protocol)")
    lp.add_argument("--label-column", default="caption")
    lp.add_argument(
        "--split",
        action="store_true",
        help="TRAIN's and VAL's rows by the split column (train vs validation)",
    )
    lp.add_argument("--max-frames", type=int, default=DEFAULT_LENGTH, help=MAX_FRAMES_HELP)
    lp.add_argument("--device", default="auto")
    lp.add_argument("--seed", type=int, default=0)
    lp.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        result = _evaluate(args)
    except (EncoderLoadError, ValueError, FileNotFoundError) as exc:
        return _fail("clip-video-eval", exc)
    if args.json:
        print(json.dumps(result, allow_nan=True))
    else:
        print(_report(result))
    return 0


def _evaluate(args) -> dict:
    from . import evaluate as ev
    from .data import TextCache, is_validation

    device = resolve_device(args.device)
    if args.protocol == "linear-probe":
        run = read_run(args.train)
        pooler = ev.Pooler(args.aggregator, _dim(run), args.max_frames, device)
        keep_train = (lambda m: not is_validation(m)) if args.split else None
        keep_val = is_validation if args.split else None
        train = ev.pooled(args.train, pooler, args.label_column, args.max_frames, keep_train)
        val = ev.pooled(args.val, pooler, args.label_column, args.max_frames, keep_val)
        result = ev.linear_probe(train, val, args.seed, device)
        protocol = {"aggregator": args.aggregator, "label_column": args.label_column}
        return {"protocol": "linear-probe", **result, "model": run.get("model"),
                "weights": run.get("pretrained"), **protocol}  # fmt: skip
    run, encoder, weights = _text_model(args.dataset, args.pretrained, device)
    dim = _dim(run)
    common = {"model": run.get("model"), "weights": weights}
    if args.protocol == "zeroshot":
        if args.labels:
            names = ev.read_labels(args.labels)
            field = args.label_field or "caption"
        else:
            field = args.label_column
            names = _distinct(args.dataset, field)
        templates = ev.read_templates(args.templates)
        classes = ev.class_embeddings(encoder.encode_text, names, templates)
        pooler = ev.Pooler(args.aggregator, dim, args.max_frames, device) if (
            args.score == "pooled") else None  # fmt: skip
        result = ev.zeroshot(args.dataset, classes, names, field, args.score, pooler,
                             args.max_frames)  # fmt: skip
        protocol = {"score": args.score, "templates": len(templates), "label_field": field,
                    "aggregator": args.aggregator if pooler else None}  # fmt: skip
        return {"protocol": "zeroshot", **result, **common, **protocol}
    column = args.caption_column or _caption_column(args.dataset)
    cache = TextCache(args.dataset, encoder, run, weights)
    pooler = ev.Pooler(args.aggregator, dim, args.max_frames, device)
    result = ev.retrieval(args.dataset, cache, column, pooler, args.max_frames, split=args.split)
    return {"protocol": "retrieval", **result, **common, "aggregator": args.aggregator,
            "caption_column": column, "split": args.split}  # fmt: skip


def _distinct(dataset: str, field: str) -> list[str]:
    """The sorted distinct values of a field (of the succeeded videos), read from the
    parquets."""
    import fsspec
    import pyarrow.parquet as pq

    from ..read import shard_urls
    from .data import shard_name

    fs, path = fsspec.core.url_to_fs(dataset)
    values: set[str] = set()
    for url in shard_urls(dataset):
        with fs.open(f"{path.rstrip('/')}/{shard_name(url)}.parquet", "rb") as f:
            table = pq.read_table(f)
        if field not in table.column_names:
            raise ValueError(f"{dataset} has no field {field!r} (save it with --save-columns)")
        for value, status in zip(table.column(field).to_pylist(),
                                 table.column("status").to_pylist(), strict=True):  # fmt: skip
            if status == "success" and value not in (None, ""):
                values.add(str(value).strip())
    return sorted(values)


def _caption_column(dataset: str) -> str:
    import fsspec
    import pyarrow.parquet as pq

    from ..read import shard_urls
    from .data import shard_name

    urls = shard_urls(dataset)
    if not urls:
        raise ValueError(f"{dataset} has no committed shard")
    fs, path = fsspec.core.url_to_fs(dataset)
    with fs.open(f"{path.rstrip('/')}/{shard_name(urls[0])}.parquet", "rb") as f:
        names = pq.read_schema(f).names
    return "captions" if "captions" in names else "caption"


def _report(result: dict) -> str:
    chance = result.get("chance", {})
    lines = [f"{result['protocol']}: {result.get('n', result.get('n_videos'))} videos,"
             f" {result.get('model')} ({result.get('weights')})"]  # fmt: skip
    for key, value in result.items():
        if key in chance:
            lines.append(f"  {key:<18} {value:8.4f}   (chance {chance[key]:.4f})")
    for pair in result.get("confused", []):
        lines.append(f"  confused: {pair['true']} -> {pair['predicted']} ({pair['count']})")
    return "\n".join(lines)
