"""Datasets in the encode format from ready-made frame embeddings.

The downstream tools (training, pooling, evaluation) read what ``clip-video-encode`` writes;
their tests and benchmarks need datasets whose answer is known (frames built from the text
tower's own class embeddings, say) without decoding any video. This writes exactly that
format (tars, parquets, stats, ``run.json``) with the same writer the encoder uses.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np

from ..commit.writer import PARQUET_COLUMNS, Sample, ShardWriter
from ..destination.folder import open_destination

# Fields of the record itself (a given ``timestamps`` or ``duration`` replaces ours); any
# other field is a copied column.
_RECORD_FIELDS = set(PARQUET_COLUMNS) | {"timestamps"}


def write_dataset(
    dest: str,
    videos: Iterable[tuple[np.ndarray | None, dict]],
    n_videos: int,
    embed_dim: int,
    model: str,
    pretrained: str,
    samples_per_shard: int = 1000,
) -> None:
    """Write ``n_videos`` rows of ``(frame embeddings or None for a failed row, metadata)``;
    metadata holds ``caption``, ``split``, optionally ``timestamps`` and ``duration``, and any
    other field (copied into ``KEY.json`` and the parquet)."""
    fs, path = open_destination(dest)
    run = {"input": "synthetic", "model": model, "pretrained": pretrained,
           "embed_dim": embed_dim, "samples_per_shard": samples_per_shard}  # fmt: skip
    with fs.open(f"{path}/run.json", "w") as f:
        json.dump(run, f)
    shards = -(-n_videos // samples_per_shard)
    digits = max(5, len(str(shards - 1)))
    rows = iter(videos)
    for s in range(shards):
        size = min(samples_per_shard, n_videos - s * samples_per_shard)
        writer = ShardWriter(fs, path, f"{s:0{digits}d}", size, embed_dim, captions=True)
        for i in range(size):
            embeddings, extra = next(rows)
            extra = dict(extra)
            caption = extra.pop("caption", None)
            key = f"{s:0{digits}d}{i:04d}"
            ok = embeddings is not None
            meta = {"key": key, "id": key, "location": f"synthetic/{key}", "caption": caption,
                    "status": "success" if ok else "failed_to_fetch",
                    "error_message": None if ok else "synthetic failure",
                    "n_frames": len(embeddings) if ok else 0,
                    "timestamps": list(range(len(embeddings))) if ok else [],
                    "split": extra.pop("split", None), **extra}  # fmt: skip
            columns = {k: v for k, v in extra.items() if k not in _RECORD_FIELDS}
            writer.add(Sample(i, key, meta, embeddings, caption, columns))
        writer.close()
