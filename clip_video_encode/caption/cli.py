"""``clip-video-caption SRC --out captions.parquet``: a caption per row, video or window;
``clip-video-caption eval PRED --refs REFS``: caption metrics.

Captioning exits 0 if every clip succeeded (or ``--allow-failures``), 1 otherwise, 2 for a
usage, input, model or settings error, an output that cannot be written or that another run
holds (its lease), 3 when its device is full, 130 / 143 when stopped by SIGINT / SIGTERM
(rerun the same command to resume: committed shards are kept). ``eval`` exits 0, or 2 for an error.
"""

from __future__ import annotations

import argparse
import errno
import json
import signal
import sys
from collections.abc import Sequence

from video2numpy.encodings import encoding_option
from video2numpy.examples import with_examples


class Stopped(BaseException):
    """SIGTERM: unwinds like Ctrl-C, so the shard in progress is left uncommitted."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["eval"]:
        return eval_main(argv[1:])
    return caption_main(argv)


def caption_main(argv: list[str]) -> int:
    from ..plan.options import add_column_options
    from .model import DEFAULT_MODEL, PRECISIONS
    from .table import CAPTION_MODES

    parser = argparse.ArgumentParser(
        prog="clip-video-caption",
        description="Caption videos, their rows' windows or fixed windows with a video"
        " captioner (SpaceTimeGPT by default) into a table clip-video-encode reads."
        " 'clip-video-caption eval -h' for the metrics.",
        **with_examples(
            "clip-video-caption videos.csv --out captions.parquet",
            "clip-video-caption lectures.csv --out clips.parquet --per window --window-seconds 4",
            "clip-video-caption eval captions.parquet --refs vatex_public_test_english_v1.1.json",
        ),
    )
    parser.add_argument("src", help="a table of videos (csv/tsv/parquet/jsonl/txt), tars, one"
                        " video, or a clip-video-encode dataset folder")  # fmt: skip
    parser.add_argument("--out", required=True, help="the caption table, NAME.parquet (its"
                        " resumable parts go in NAME.parquet.parts/)")  # fmt: skip
    group = parser.add_argument_group("model")
    group.add_argument("--model", default=DEFAULT_MODEL,
                       help="a VisionEncoderDecoderModel: Hub id or local folder"
                       f" ({DEFAULT_MODEL})")  # fmt: skip
    group.add_argument("--processor", help="image processor (default: the model card's, else"
                       " the model's own)")  # fmt: skip
    group.add_argument("--tokenizer", help="tokenizer (default: the model card's, else the"
                       " model's own)")  # fmt: skip
    group.add_argument("--revision", help="Hub branch, tag or commit of the model")
    group.add_argument("--cache-dir", help="Hugging Face cache folder")
    group.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (auto)")
    group.add_argument("--precision", choices=PRECISIONS, default="auto",
                       help="auto: fp16 on a GPU, fp32 on a CPU")  # fmt: skip
    group.add_argument("--num-frames", type=int, help="frames per clip (default: the model's"
                       " config.encoder.num_frames)")  # fmt: skip
    group.add_argument("--num-beams", type=int, default=8)
    group.add_argument("--min-length", type=int, default=10, help="in tokens (10)")
    group.add_argument("--max-length", type=int, default=20, help="in tokens (20)")
    group.add_argument("--batch-size", type=int, help="clips per batch (32 on a GPU, 4 on a"
                       " CPU; about 1 GB each at SpaceTimeGPT's size on a CPU)")  # fmt: skip
    group = parser.add_argument_group("clips")
    group.add_argument("--per", choices=["row", "video", "window"], default="row",
                       help="row: each row's window (or its whole video); video: each video"
                       " once, whole; window: --window-seconds windows of each row, cut as"
                       " clip-video-hierarchy's clip level")  # fmt: skip
    group.add_argument("--window-seconds", type=float, default=4.0)
    group.add_argument("--caption", choices=CAPTION_MODES, default="fill",
                       help="what the caption column holds: fill: the input's caption where"
                       " the row has one (per row), else the generated one; keep: the"
                       " input's; replace: the generated one. generated_caption always holds"
                       " the generated one")  # fmt: skip
    group.add_argument("--backend", default="auto", choices=["auto", "pyav", "decord"])
    group = parser.add_argument_group("input columns")
    add_column_options(group)
    group.add_argument(
        "--encoding", type=encoding_option, help="text encoding of the input (default UTF-8)"
    )
    group = parser.add_argument_group("run")
    group.add_argument("--samples-per-shard", type=int, default=1000)
    group.add_argument("--workers", type=int, default=4, help="rows sampled ahead (4)")
    group.add_argument("--allow-failures", action="store_true", help="exit 0 despite failed"
                       " clips")  # fmt: skip
    group.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    from ..destination.lease import DestinationBusy, LeaseLost
    from ..plan.options import columns_from_options
    from .frames import ClipPlan
    from .model import CaptionerOptions, CaptionModelError
    from .run import CaptionJob, caption_dataset
    from .table import RunMismatch

    try:
        job = CaptionJob(
            src=args.src,
            out=args.out,
            captioner=CaptionerOptions(
                model=args.model,
                processor=args.processor,
                tokenizer=args.tokenizer,
                revision=args.revision,
                device=args.device,
                precision=args.precision,
                num_frames=args.num_frames,
                num_beams=args.num_beams,
                min_length=args.min_length,
                max_length=args.max_length,
                cache_dir=args.cache_dir,
            ),  # fmt: skip
            plan=ClipPlan(
                per=args.per, window_seconds=args.window_seconds, backend=args.backend
            ),  # fmt: skip
            columns=columns_from_options(args),
            caption_mode=args.caption,
            samples_per_shard=args.samples_per_shard,
            batch_size=args.batch_size,
            workers=args.workers,
            encoding=args.encoding,
        )
    except ValueError as exc:
        parser.error(str(exc))

    def stop(signum, frame):
        raise Stopped(signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        summary = caption_dataset(job, progress=False if args.quiet else None)
    except (CaptionModelError, RunMismatch, ValueError, FileNotFoundError, DestinationBusy,
            LeaseLost) as exc:  # fmt: skip
        print(f"clip-video-caption: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the table's place refuses: full, read-only, gone
        full = exc.errno == errno.ENOSPC
        print(f"clip-video-caption: {'no space left: ' if full else ''}{exc}. Committed shards"
              " are kept: rerun the same command to resume.", file=sys.stderr)  # fmt: skip
        return 3 if full else 2
    except (KeyboardInterrupt, Stopped) as exc:
        signum = exc.signum if isinstance(exc, Stopped) else signal.SIGINT
        print(f"clip-video-caption: stopped by {signal.Signals(signum).name}; committed shards"
              " are kept: rerun the same command to resume.", file=sys.stderr)  # fmt: skip
        return 128 + signum
    finally:
        signal.signal(signal.SIGTERM, previous)
    detail = ", ".join(f"{s}: {n}" for s, n in summary["status_dict"].items() if s != "success")
    skipped = summary["shards_skipped"]
    print(
        f"clip-video-caption: {summary['clips']} clips captioned in {summary['seconds']:.1f} s,"
        f" {summary['successes']} succeeded, {summary['failed']} failed"
        f"{f' ({detail})' if detail else ''}; {summary['shards_written']} shards written"
        f"{f', {skipped} already done' if skipped else ''};"
        f" {summary['rows']} rows -> {summary['out']}",
        file=sys.stderr,
    )
    return 1 if summary["failed"] and not args.allow_failures else 0


def eval_main(argv: list[str]) -> int:
    from .evaluate import MISSING, EvalOptions
    from .formats import FORMATS

    parser = argparse.ArgumentParser(
        prog="clip-video-caption eval",
        description="Score predicted captions against references (CIDEr-D, CIDEr, BLEU-1..4,"
        " ROUGE-L, METEOR), equal to the coco-caption scorer (pycocoevalcap).",
        **with_examples(
            "clip-video-caption eval captions.parquet --refs vatex_public_test_english_v1.1.json",
            "clip-video-caption eval predictions.json --refs references.json --json",
            "clip-video-caption eval preds.txt --refs vatex_test.csv --per-sample scores.parquet",
        ),
    )
    parser.add_argument("pred", help="predictions: a caption table, COCO json, pipe file, ...")
    parser.add_argument("--refs", required=True, help="references: VATEX json, COCO json, an"
                        " id|caption|... file, a table or a clip-video-encode dataset")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the corpus scores as one"
                        " JSON object (metric names as keys)")  # fmt: skip
    parser.add_argument("--per-sample", metavar="OUT.parquet", help="write per-sample scores")
    parser.add_argument("--missing", choices=MISSING, default="error",
                        help="ids on one side only: error, skip them, or score a missing"
                        " prediction as empty (error)")  # fmt: skip
    parser.add_argument("--tokenizer", choices=["auto", "ptb", "python"], default="auto",
                        help="ptb: Stanford's, as coco-caption (needs Java); python: its"
                        " pure-Python equal; auto: ptb where Java runs")  # fmt: skip
    parser.add_argument("--no-meteor", action="store_true", help="skip METEOR (Java)")
    parser.add_argument("--no-chance", action="store_true", help="skip the chance level")
    for side in ("pred", "refs"):
        parser.add_argument(f"--{side}-format", choices=FORMATS, default="auto")
    parser.add_argument(
        "--encoding", type=encoding_option, help="text encoding of the files (default UTF-8)"
    )
    parser.add_argument(
        "--refs-encoding", type=encoding_option, help="of the references, when it differs"
    )
    parser.add_argument("--id-field", help="id column of a prediction table")
    parser.add_argument("--caption-field", help="caption column of a prediction table")
    parser.add_argument("--refs-id-field", help="id column of a reference table")
    parser.add_argument("--refs-caption-field", help="caption column of a reference table")
    args = parser.parse_args(argv)

    from .evaluate import evaluate, per_sample_table
    from .formats import FormatError
    from .model import CaptionModelError
    from .tokenize import TokenizerError

    try:
        options = EvalOptions(
            pred_format=args.pred_format, refs_format=args.refs_format,
            encoding=args.encoding, refs_encoding=args.refs_encoding,
            id_field=args.id_field, caption_field=args.caption_field,
            refs_id_field=args.refs_id_field, refs_caption_field=args.refs_caption_field,
            missing=args.missing, tokenizer=args.tokenizer, meteor=not args.no_meteor,
            chance=not (args.no_chance or args.json),
        )  # fmt: skip
        if args.per_sample:
            _not_an_input(args.per_sample, {"PRED": args.pred, "--refs": args.refs})
        result = evaluate(args.pred, args.refs, options)
        if args.per_sample:
            import pyarrow.parquet as pq

            pq.write_table(per_sample_table(result), args.per_sample)
    except (FormatError, TokenizerError, CaptionModelError, ValueError, FileNotFoundError) as exc:
        print(f"clip-video-caption eval: {exc}", file=sys.stderr)
        return 2
    for metric, why in result["skipped"].items():
        print(f"clip-video-caption eval: {metric} skipped: {why}", file=sys.stderr)
    if args.json:
        print(json.dumps(result["corpus"]))
        return 0
    counts = result["counts"]
    print(f"{counts['scored']} videos scored ({counts['references']} references;"
          f" tokenizer {result['tokenizer']}; unreferenced predictions"
          f" {counts['unreferenced_predictions']}, missing predictions"
          f" {counts['missing_predictions']})")  # fmt: skip
    chance = result.get("chance", {})
    print(f"{'metric':<10}{'score':>10}{'chance':>10}")
    for metric, value in result["corpus"].items():
        level = f"{chance[metric]:>10.4f}" if metric in chance else f"{'':>10}"
        print(f"{metric:<10}{value:>10.4f}{level}")
    return 0


def _not_an_input(out: str, inputs: dict[str, str]) -> None:
    """``--per-sample`` is written over whatever is there: never over (or into) an input."""
    import os

    mine = os.path.realpath(out) if "://" not in out else out
    for flag, path in inputs.items():
        theirs = os.path.realpath(path) if "://" not in path else path.rstrip("/")
        if mine == theirs or mine.startswith(theirs.rstrip("/") + "/"):
            raise ValueError(
                f"--per-sample {out} is an input ({flag} {path}): it would be written over;"
                " choose another path for the per-sample scores"
            )


if __name__ == "__main__":
    sys.exit(main())
