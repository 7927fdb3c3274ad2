"""``clip-video-encode SRC --dest DIR``: a sharded webdataset of CLIP frame embeddings.

Exit code 0 if every row succeeded (or ``--allow-failures``), 1 otherwise, 2 for a usage or
settings error or a destination another run holds (see ``lease.py``), 3 when the destination
is full or keeps refusing writes, 130 / 143 when stopped by SIGINT / SIGTERM. A rerun of the
same command resumes: finished shards are skipped.
"""

from __future__ import annotations

import argparse
import errno
import signal
import sys
from collections.abc import Sequence

from video2numpy.encodings import encoding_option
from video2numpy.examples import with_examples

# Only light imports here: each decode worker (a spawned process) imports this module again
# as its parent's main module, and would otherwise carry pyarrow, fsspec and the rest, about
# 40 MB per worker, for nothing. main() imports them.
from .models.encoder import ENGINES, PRECISIONS

STORAGE_FULL = 3


class Stopped(BaseException):
    """SIGTERM (a scheduler or ``kill``): unwinds like Ctrl-C, so the run stops cleanly."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


def _stop_on_sigterm():
    """Make SIGTERM raise :class:`Stopped`; returns the handler it replaced (None where
    handlers cannot be set: not the main thread)."""

    def stop(signum, frame):
        raise Stopped(signum)

    try:
        return signal.signal(signal.SIGTERM, stop)
    except ValueError:
        return None


def _retry_statuses(retry_failed: bool, listed: list[str]) -> frozenset[str]:
    from video2numpy.status import SUCCESS

    from .plan.retry import RETRYABLE

    extra = {s.strip() for item in listed for s in item.split(",") if s.strip()}
    if not (retry_failed or extra):
        return frozenset()
    if SUCCESS in extra:
        raise ValueError("--retry-status success: rows that succeeded are never redone")
    return RETRYABLE | extra


def main(argv: Sequence[str] | None = None) -> int:
    from video2numpy.options import add_frame_arguments, frame_options

    from .commit.writer import StorageRefused
    from .destination.lease import DestinationBusy, LeaseLost
    from .models.encoder import EncoderFidelityError, EncoderLoadError, EncoderOptions
    from .plan.job import EncodeJob
    from .plan.options import add_column_options, columns_from_options
    from .plan.run_file import RunMismatch

    parser = argparse.ArgumentParser(
        prog="clip-video-encode",
        description="Encode videos into a webdataset of CLIP frame embeddings.",
        **with_examples(
            "clip-video-encode videos.csv --dest embeddings --fps 1",
            'clip-video-encode "shards/{00000..00099}.tar" --dest s3://bucket/emb --num-frames 8',
            "clip-video-encode k400.parquet --dest k400 --distributor ray --retry-failed",
        ),
    )
    parser.add_argument("src", help="a table of videos (csv/tsv/parquet/jsonl/txt) or one video")
    parser.add_argument("--dest", required=True, help="output folder or fsspec URL")
    group = parser.add_argument_group("encoder")
    group.add_argument("--model", default="ViT-B-32", help="open_clip model name (ViT-B-32)")
    group.add_argument(
        "--pretrained",
        default=None,
        help="open_clip tag (default: the model's best-known), a local checkpoint path, or"
        " 'none' for random weights",
    )
    group.add_argument("--precision", choices=PRECISIONS, default="auto",
                       help="auto: fp16 on a GPU, bf16 on a CPU with AMX, else fp32; int8:"
                       " ONNX Runtime's dynamic quantisation")  # fmt: skip
    group.add_argument("--engine", choices=ENGINES, default="auto",
                       help="torch, or onnxruntime (CPU; fp32 or int8; pip install"
                       " 'clip-video-datasets[onnx]'); auto: onnxruntime for int8, else"
                       " torch")  # fmt: skip
    group.add_argument("--min-cosine", type=float, default=0.99,
                       help="an engine other than torch fp32 is checked on the first batch"
                       " against it; below this lowest cosine the run stops (0.99)")  # fmt: skip
    group.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (auto)")
    group.add_argument(
        "--batch-size",
        type=int,
        help="frames per batch (default: 256 on a GPU; on a CPU 128 in bf16, in fp32 8 per"
        " thread, 16 to 128)",
    )
    group.add_argument("--cache-dir", help="where open_clip keeps downloaded weights")
    group.add_argument(
        "--caption-similarity",
        action="store_true",
        help="store each frame's cosine similarity to the caption in KEY.json",
    )
    group = parser.add_argument_group("input columns")
    add_column_options(group, save=True)
    group.add_argument(
        "--encoding",
        type=encoding_option,
        help="text encoding of the input table, or of input tars' txt and json members"
        " (default UTF-8; e.g. cp1252)",
    )
    group = parser.add_argument_group("run")
    group.add_argument("--samples-per-shard", type=int, default=1000)
    group.add_argument(
        "--distributor",
        choices=["local", "ray"],
        default="local",
        help="local: worker processes and one encoder here; ray: decode and encoder actors on"
        " a Ray cluster (RAY_ADDRESS or --ray-address; a Ray instance here if neither)",
    )
    group = parser.add_argument_group("ray (with --distributor ray)")
    group.add_argument("--ray-address", help="cluster to join (default: RAY_ADDRESS)")
    group.add_argument("--decoders", type=int, help="decode actors (the CPUs the encoders leave)")
    group.add_argument("--encoders", type=int, help="encoder actors (one per GPU, else 1)")
    group.add_argument(
        "--encoder-cpus",
        type=float,
        default=1.0,
        help="CPUs an encoder actor reserves on a cluster without GPUs (1)",
    )
    group.add_argument(
        "--encoder-gpus",
        type=float,
        help="GPUs per encoder actor (default: 1 if the cluster has GPUs now, else 0)",
    )
    group.add_argument(
        "--pipelines",
        type=int,
        help="processes on the driver's machine that schedule videos and write shards, each"
        " with its share of the decoders and encoders (default: one per GPU encoder, at most"
        " one per two cores there; 1 without GPUs)",
    )
    group.add_argument(
        "--output-format",
        choices=["webdataset", "files"],
        default="webdataset",
        help="webdataset: NAME.tar per shard; files: a folder NAME/ of files per shard",
    )
    group.add_argument(
        "--replan",
        action="store_true",
        help="the input table changed since --dest was started: keep the committed shards whose"
        " rows are unchanged, redo the others (without it such a rerun is refused)",
    )
    group.add_argument(
        "--retry-failed",
        action="store_true",
        help="also redo the rows of committed shards that failed to fetch or timed out (and"
        " those with a --retry-status); every other row stays byte for byte",
    )
    group.add_argument(
        "--retry-status",
        action="append",
        default=[],
        metavar="STATUS[,STATUS]",
        help="further statuses to redo, e.g. failed_to_decode (implies --retry-failed)",
    )
    group.add_argument(
        "--io-retries",
        type=int,
        default=5,
        help="times a commit step that an object store refuses for a while (throttling,"
        " resets) is tried again, with exponential backoff from 0.5 s (5)",
    )
    group.add_argument("--allow-failures", action="store_true", help="exit 0 despite failed rows")
    group.add_argument("--quiet", action="store_true", help="no progress bar")
    add_frame_arguments(parser)
    args = parser.parse_args(argv)

    size_given = any(a == "--size" or a.startswith("--size=") for a in (argv or sys.argv[1:]))
    try:
        job = EncodeJob(
            src=args.src,
            dest=args.dest,
            frames=frame_options(args),
            encoder=EncoderOptions(
                model=args.model,
                pretrained=args.pretrained,
                precision=args.precision,
                device=args.device,
                batch_size=args.batch_size,
                cache_dir=args.cache_dir,
                text=args.caption_similarity,
                engine=args.engine,
                min_cosine=args.min_cosine,
            ),
            columns=columns_from_options(args),
            samples_per_shard=args.samples_per_shard,
            workers=args.workers,
            timeout=args.timeout,
            caption_similarity=args.caption_similarity,
            output_format=args.output_format,
            size_from_model=not size_given,
            replan=args.replan,
            io_retries=args.io_retries,
            encoding=args.encoding,
            retry_statuses=_retry_statuses(args.retry_failed, args.retry_status),
        )
    except ValueError as exc:
        parser.error(str(exc))

    progress = False if args.quiet else None
    previous = _stop_on_sigterm()
    try:
        if args.distributor == "ray":
            from .execute.ray_executor import RayOptions, encode_dataset_ray

            ray_options = RayOptions(
                address=args.ray_address,
                decoders=args.decoders,
                encoders=args.encoders,
                encoder_cpus=args.encoder_cpus,
                encoder_gpus=args.encoder_gpus,
                pipelines=args.pipelines,
            )
            summary = encode_dataset_ray(job, ray_options, progress)
        else:
            from .execute.local import encode_dataset

            summary = encode_dataset(job, progress=progress)
    except (EncoderLoadError, RunMismatch, ValueError, FileNotFoundError, DestinationBusy,
            LeaseLost, EncoderFidelityError) as exc:  # fmt: skip
        print(f"clip-video-encode: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Stopped) as exc:
        signum = exc.signum if isinstance(exc, Stopped) else signal.SIGINT
        print(
            f"clip-video-encode: stopped by {signal.Signals(signum).name}; committed shards are"
            " kept and the shards in progress were removed: rerun the same command to resume.",
            file=sys.stderr,
        )
        return 128 + signum
    except StorageRefused as exc:
        print(f"clip-video-encode: {exc.strerror}. Rerunning the same command resumes at the"
              " first shard not committed (the shard being written was removed).",
              file=sys.stderr)  # fmt: skip
        return STORAGE_FULL
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        print(
            f"clip-video-encode: no space left on the device of {args.dest}"
            f"{f' (writing {exc.filename})' if exc.filename else ''}. Free space there or"
            " choose another --dest; rerunning the same command resumes at the first shard"
            " not committed (the shard being written was removed).",
            file=sys.stderr,
        )
        return STORAGE_FULL
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    skipped, redone = summary["shards_skipped"], summary.get("redone", 0)
    retried = summary.get("shards_retried", 0)
    before = summary.get("failed_in_skipped", 0)
    detail = ", ".join(
        f"{s}: {n}" for s, n in sorted(summary["status_dict"].items()) if s != "success"
    )
    print(
        f"clip-video-encode: {summary['videos']} videos in {summary['seconds']:.1f} s,"
        f" {summary['successes']} succeeded, {summary['failed']} failed"
        f"{f' ({detail})' if detail else ''}, {summary['frames']} frames;"
        f" {summary['shards_written']} shards written"
        f"{f' ({retried} of them rewritten, their failed rows redone)' if retried else ''}"
        f"{f', {skipped} already done' if skipped else ''}"
        f"{f' ({before} of their rows failed)' if skipped and before else ''}"
        f"{f'; {redone} videos redone after a lost worker' if redone else ''}"
        f" -> {summary['dest']}",
        file=sys.stderr,
    )
    failed = summary.get("dataset_failed", summary["failed"])  # the whole dataset's rows
    return 1 if failed and not args.allow_failures else 0


if __name__ == "__main__":
    sys.exit(main())
