"""The destination folder: opened, listed afresh, and which of its shards are committed."""

from __future__ import annotations

import json

import fsspec


def open_destination(dest: str):
    fs, path = fsspec.core.url_to_fs(dest)
    fs.invalidate_cache(path)  # what a cached listing says may be gone, or new, by now
    fs.makedirs(path, exist_ok=True)
    return fs, path.rstrip("/")


def names_in(fs, dest: str) -> set[str]:
    """The names in ``dest``, listed afresh."""
    fs.invalidate_cache(dest)
    return {p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(dest, detail=False)}


def stats_path(dest: str, name: str) -> str:
    return f"{dest}/{name}_stats.json"


def committed_shards(fs, path: str) -> tuple[list[dict], list[dict]]:
    """The shards of a destination whose commit is valid, as ``(stats, listing entries of
    their markers)``, in name order. A marker counts only if it parses, and the tar (or
    folder) and parquet it vouches for are there with the sizes it recorded: a 0-byte or
    half-written marker, or data replaced since, means the shard is not committed."""
    fs.invalidate_cache(path)
    listing = {e["name"].rstrip("/"): e for e in fs.ls(path, detail=True)}
    stats_list, markers = [], []
    for name in sorted(n for n in listing if n.endswith("_stats.json")):
        entry = listing[name]
        if not entry.get("size"):
            continue
        try:
            stats = json.loads(fs.cat_file(name))
        except (ValueError, OSError):
            continue
        base = name[: -len("_stats.json")]
        if not isinstance(stats, dict) or not isinstance(stats.get("count"), int):
            continue
        tar, parquet = listing.get(base + ".tar"), listing.get(base + ".parquet")
        data = tar or listing.get(base)
        if data is None or parquet is None:
            continue
        if stats.get("tar_bytes") is not None and (tar or {}).get("size") != stats["tar_bytes"]:
            continue
        if stats.get("parquet_bytes") is not None and parquet.get("size") != stats[
                "parquet_bytes"]:  # fmt: skip
            continue
        stats["_data"] = base + ".tar" if tar else base
        stats_list.append(stats)
        markers.append(entry)
    return stats_list, markers
