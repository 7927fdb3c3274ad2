"""What a Ray run shows while it goes: a progress bar, or a line every 30 s in a cluster
job's log, with the lanes' decoders and encoders and the videos redone."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm


class Progress:
    """The driver's progress bar; without one (a cluster job's log), a line every 30 s."""

    def __init__(self, summary, total: int | None, progress: bool | None, pools: list) -> None:
        self.summary, self.total, self.pools = summary, total, pools
        self.bar = tqdm(total=total, unit="video", desc="encode",
                        disable=None if progress is None else not progress)  # fmt: skip
        self.quiet = progress is False
        self.done = 0
        self.began = self.reported = time.monotonic()

    def advance(self, videos: int, redone: int, every: float = 30.0) -> None:
        if not videos:
            return
        self.done += videos
        self.bar.update(videos)
        now = time.monotonic()
        if not self.bar.disable or self.quiet or now - self.reported < every:
            return
        self.reported = now
        rate = self.done / max(now - self.began, 1e-9)
        total = f"/{self.total}" if self.total is not None else ""
        lanes = f", {len(self.pools)} pipelines" if len(self.pools) > 1 else ""
        print(
            f"clip-video-encode: {self.done}{total} videos ({rate:.2f}/s), shards"
            f" {self.summary.done_shards}/{self.summary.todo} written,"
            f" {sum(p.decoders for p in self.pools)} decoders,"
            f" {sum(p.encoders for p in self.pools)} encoders{lanes}, {redone} redone",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        self.bar.close()
