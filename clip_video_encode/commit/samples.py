"""A row and its decode record become a sample (``KEY.json``'s metadata); the run's counts."""

from __future__ import annotations

import math
import time
from collections import Counter

from video2numpy.jsonsafe import plain
from video2numpy.status import SUCCESS

from ..plan.job import EncodeJob
from .writer import Sample


def finish_sample(
    row: dict, index: int, record: dict, embeddings, similarity, job: EncodeJob
) -> Sample:
    """The ``KEY.json`` metadata and ``Sample`` of one row, from its decode record.
    ``similarity(embeddings, text)``: per-frame cosine to the caption (the encoder's)."""
    caption = caption_text(row.get("caption"))
    meta = {
        "key": row["key"],
        "id": plain(row.get("id")),
        "location": row["location"],
        "caption": caption,
        "status": record["status"],
        "error_message": record.get("error_message"),
        "n_frames": int(len(embeddings)) if embeddings is not None else 0,
        "timestamps": record.get("timestamps", []) if embeddings is not None else [],
        "duration": record.get("duration"),
        "source_fps": record.get("source_fps"),
        "width": record.get("width"),
        "height": record.get("height"),
        "rotation": record.get("rotation"),  # the display matrix, applied: width, height as shown
        "mirrored": record.get("mirrored"),
        "start": plain(row.get("start")),  # a NaN bound (a missing number) is no bound
        "end": plain(row.get("end")),
        "split": plain(row.get("split")),
    }
    if record.get("warning"):
        meta["warning"] = record["warning"]
    extra = {k: plain(v) for k, v in row.get("extra", {}).items()}
    meta.update({k: v for k, v in extra.items() if k not in meta})
    if job.caption_similarity and embeddings is not None and caption:
        meta["caption_similarity"] = [round(float(s), 5) for s in similarity(
            embeddings, caption)]  # fmt: skip
    # A damaged input tar: the row it cut into says so, and the shard's stats too.
    return Sample(index, row["key"], meta, embeddings, caption, extra,
                  shard_error=row.get("tar_error"))  # fmt: skip


class Summary:
    """Counts for the summary line and the exit code: of the rows this run did, and of the
    whole dataset after it (``committed``: the failed rows of each shard committed before)."""

    def __init__(self, shards: int, todo: int, dest: str, retried: int = 0,
                 committed: dict[str, int] | None = None) -> None:  # fmt: skip
        self.shards, self.todo, self.dest, self.retried = shards, todo, dest, retried
        self.failed_before = dict(committed or {})  # shard -> failed rows, before this run
        self.failed_by_shard = dict(self.failed_before)  # ... and after it
        self.written: set[str] = set()  # shards committed by this run
        self.began = time.perf_counter()
        self.statuses: Counter[str] = Counter()
        self.frames = 0
        self.done_shards = 0
        self.shard_errors: list[str] = []  # damaged input tars, as their shards' stats say

    def count(self, meta: dict) -> None:
        self.statuses[meta["status"]] += 1
        self.frames += meta["n_frames"]

    def shard_done(self, stats: dict) -> None:
        self.done_shards += 1
        self.failed_by_shard[stats["shard"]] = stats.get("failed", 0)
        self.written.add(stats["shard"])
        if stats.get("error"):
            self.shard_errors.append(f"{stats['shard']}: {stats['error']}")

    def finish(self) -> dict:
        seconds = time.perf_counter() - self.began
        videos = sum(self.statuses.values())
        return {
            "dest": self.dest,
            "shards": self.shards,
            "shards_written": self.done_shards,
            "shards_skipped": self.shards - self.todo,
            "shards_retried": self.retried,  # committed shards rewritten (--retry-failed)
            "videos": videos,
            "successes": self.statuses.get(SUCCESS, 0),
            "failed": videos - self.statuses.get(SUCCESS, 0),
            "status_dict": dict(self.statuses),
            "frames": self.frames,
            "shard_errors": self.shard_errors,  # their rows are counted in failed too
            # the failed rows of the shards left as they were, and of the whole dataset now:
            # the exit code's (0 only when every row of the dataset succeeded)
            "failed_in_skipped": sum(
                n for shard, n in self.failed_before.items() if shard not in self.written
            ),
            "dataset_failed": sum(self.failed_by_shard.values()),
            "seconds": round(seconds, 3),
        }


def caption_text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list):  # several captions: the first is KEY.txt
        return caption_text(value[0]) if value else None
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)
