"""MSR-VTT: the official json (``videos``: ``video_id``, ``url``, ``start time``, ``end time``,
``split``; ``sentences``: ``video_id``, ``caption``), and the 1k-A test csv
(``key,vid_key,video_id,sentence``) that most retrieval papers report on.

From the json: one row per video, all its (about 20) captions in ``captions``. With the csv
as well: only the csv's videos, each with the csv's sentence as ``caption``. The released
``videoN.mp4`` files are already cut to the clip, which ``--video-root`` finds. A video whose
window is invalid (start after end, ...) is left out and counted (``--strict`` stops).
"""

from __future__ import annotations

import pyarrow as pa

from video2numpy.youtube import parse_youtube_id

from . import register
from .core import ConvertError, expect, normalise_split, text_of, where, window, youtube_url
from .text import read_csv, read_json_doc


@register(
    "msrvtt",
    "MSR-VTT (official json; optional 1k-A test csv)",
    "train_val_videodatainfo.json / test_videodatainfo.json [MSRVTT_JSFUSION_test.csv]",
    {"category": pa.int64(), "captions": pa.list_(pa.string())},
)
def convert(paths, options, report):
    videos: dict[str, dict] = {}
    subset: list[tuple[str, str, str]] = []  # (video_id, sentence, where) from 1k-A csvs
    for path in paths:
        if path.lower().endswith((".csv", ".csv.gz")):
            for line, raw in read_csv(path, ("video_id", "sentence"), options.encoding,
                                      report=report):  # fmt: skip
                video_id = (raw["video_id"] or "").strip()
                expect(bool(video_id), path, "empty video_id", line)
                subset.append((video_id, text_of(raw["sentence"]), where(path, line)))
            continue
        doc = read_json_doc(path, options.encoding, depth=2)
        data = doc.value
        expect(
            isinstance(data, dict)
            and isinstance(data.get("videos"), list)
            and isinstance(data.get("sentences", []), list),
            path,
            "expected the MSR-VTT json with 'videos' and 'sentences' lists",
        )
        for n, item in enumerate(data["videos"]):
            line = doc.line("videos", n)
            video_id = text_of(item.get("video_id")) if isinstance(item, dict) else None
            expect(bool(video_id), path, f"videos[{n}]: no video_id", line)
            try:
                start, end = _window(item.get("start time"), item.get("end time"))
            except ValueError as exc:
                report.skip(path, line, f"{video_id}: {exc}")
                continue
            category = item.get("category")
            if category is not None and (not isinstance(category, int) or isinstance(category, bool)
                                         or not 0 <= category < 2**63):  # fmt: skip
                raise ConvertError(path, f"{video_id}: category {category!r} is not a number",
                                   line)  # fmt: skip
            url = text_of(item.get("url"))
            youtube_id = parse_youtube_id(url) if url else None
            videos[video_id] = {
                "id": video_id,
                "location": youtube_url(youtube_id) if youtube_id else url,
                "caption": None,
                "start": start,
                "end": end,
                "split": normalise_split(item.get("split")),
                "captions": [],
                "category": category,
                "youtube_id": youtube_id,
                "_clip_file": video_id,
                "_where": where(path, line),
            }
        for n, sentence in enumerate(data.get("sentences", [])):
            expect(isinstance(sentence, dict), path, f"sentences[{n}]: not an object",
                   doc.line("sentences", n))  # fmt: skip
            video = videos.get(text_of(sentence.get("video_id")) or "")
            caption = text_of(sentence.get("caption"))
            if video is not None and caption is not None:
                video["captions"].append(caption)
    for video in videos.values():
        video["caption"] = video["captions"][0] if video["captions"] else None
    if not subset:
        return list(videos.values())
    rows = []
    for video_id, sentence, source in subset:
        video = videos.get(video_id)
        if video is None:  # the csv alone: the files under --video-root are the only source
            video = {"id": video_id, "location": None, "captions": [], "_clip_file": video_id}
        rows.append({**video, "caption": sentence, "split": "test", "_where": source})
    if not videos:
        report.note("no MSR-VTT json given: rows have no URL, only --video-root files")
    return rows


def _window(start, end) -> tuple[float | None, float | None]:
    """A video's clip window; none when the json gives neither end."""
    if start is None and end is None:
        return None, None
    return window(start, end, ("start time", "end time"))
