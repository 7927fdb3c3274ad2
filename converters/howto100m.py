"""HowTo100M: ``HowTo100M_v1.csv`` (``video_id,category_1,category_2,rank,task_id``) and
``caption.json`` (``{video_id: {"start": [...], "end": [...], "text": [...]}}``, the ASR
subtitles). One row per subtitle; a video of the csv without subtitles gets one whole-video
row. Either file may be given alone. A subtitle whose window is not valid seconds (start after
end, ...) is left out and counted, named by video and index (``--strict`` stops there).

``caption.json`` is about 3 GB: it is parsed incrementally (ijson), never read whole. With the
csv too, the videos come in the csv's order (then those only in ``caption.json``); the
subtitles wait in a temporary SQLite file meanwhile, so memory stays flat either way.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile

from . import register
from .core import expect, text_of, where, window, youtube_url
from .text import iter_json_object, read_csv

FIELDS = ("category_1", "category_2", "task_id")
KEYS = ("start", "end", "text")


@register("howto100m", "HowTo100M (ASR subtitles)", "HowTo100M_v1.csv and/or caption.json")
def convert(paths, options, report):
    tables = [p for p in paths if p.lower().endswith((".csv", ".csv.gz"))]
    captions = [p for p in paths if p not in tables]
    if not tables:
        for path in captions:
            for video_id, item in iter_json_object(path, options.encoding):
                item = subtitles(path, video_id, item, report)
                yield from rows_of(video_id, item, {}, options.split, path)
        return
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(_CaptionStore()) if captions else None
        for path in captions:
            store.add_all(path, options.encoding, report)
        for path in tables:
            for line, raw in read_csv(path, ("video_id",), options.encoding, FIELDS, report):
                video_id = (raw["video_id"] or "").strip()
                expect(bool(video_id), path, "empty video_id", line)
                fields = {k: text_of(raw.get(k)) for k in FIELDS}
                item = store.take(video_id) if store is not None else None
                yield from rows_of(video_id, item, fields, options.split, where(path, line))
        if store is not None:
            for video_id, item in store.left():
                yield from rows_of(video_id, item, {}, options.split, "")


def subtitles(path: str, video_id: str, item, report) -> tuple[str, list[tuple]]:
    """``path`` and ``(index, start, end, text)`` of a video's valid subtitles.
    ``caption.json`` is one line of gigabytes, read as a stream: a subtitle is named by video
    and index, not line."""
    expect(bool(video_id.strip()), path, "an empty video id")
    expect(isinstance(item, dict) and all(isinstance(item.get(k), list) for k in KEYS), path,
           f"{video_id}: needs start, end and text lists")  # fmt: skip
    lengths = {len(item[k]) for k in KEYS}
    expect(len(lengths) == 1, path, f"{video_id}: start/end/text lengths differ")
    kept = []
    for i, (start, end, text) in enumerate(zip(*(item[k] for k in KEYS), strict=True)):
        try:
            kept.append((i, *window(start, end), text_of(text)))
        except ValueError as exc:
            report.skip(path, None, f"{video_id} subtitle {i}: {exc}")
    return path, kept


def rows_of(video_id: str, item, fields: dict, split, source: str):
    """A video's rows: one per subtitle in ``item`` (``(path, subtitles)``), else one for the
    whole video (the csv's line ``source``)."""
    base = {"location": youtube_url(video_id), "split": split, "youtube_id": video_id,
            **{k: fields.get(k) for k in FIELDS}, "_video_file": video_id}  # fmt: skip
    if item is None:
        yield {"id": video_id, "caption": None, "start": None, "end": None, **base,
               "segment": None, "_where": source}  # fmt: skip
        return
    path, subs = item
    for i, start, end, text in subs:
        yield {"id": f"{video_id}_{i}", "caption": text, "start": start, "end": end, **base,
               "segment": i, "_where": f"{path} ({video_id} subtitle {i})"}  # fmt: skip


class _CaptionStore:
    """Subtitles by video id in a temporary SQLite file, taken out in the csv's order."""

    def __enter__(self) -> _CaptionStore:
        handle, self.path = tempfile.mkstemp(suffix=".sqlite", prefix="howto100m-")
        os.close(handle)
        self.db = sqlite3.connect(self.path)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE c (id TEXT PRIMARY KEY, item TEXT, taken INTEGER)")
        return self

    def __exit__(self, *exc) -> None:
        self.db.close()
        with contextlib.suppress(OSError):
            os.remove(self.path)

    def add_all(self, path: str, encoding: str, report) -> None:
        batch = []
        for video_id, item in iter_json_object(path, encoding):
            batch.append((video_id, json.dumps(subtitles(path, video_id, item, report)), 0))
            if len(batch) >= 10_000:
                self._insert(batch)
                batch = []
        self._insert(batch)

    def _insert(self, batch: list) -> None:
        self.db.executemany("INSERT OR REPLACE INTO c VALUES (?, ?, ?)", batch)
        self.db.commit()

    def take(self, video_id: str) -> dict | None:
        found = self.db.execute("SELECT item FROM c WHERE id = ?", (video_id,)).fetchone()
        if found is None:
            return None
        self.db.execute("UPDATE c SET taken = 1 WHERE id = ?", (video_id,))
        return json.loads(found[0])

    def left(self):
        self.db.commit()
        query = "SELECT id, item FROM c WHERE taken = 0 ORDER BY rowid"
        for video_id, item in self.db.execute(query):
            yield video_id, json.loads(item)
