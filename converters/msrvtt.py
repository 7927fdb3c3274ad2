"""MSR-VTT: the official json (``videos``: ``video_id``, ``url``, ``start time``, ``end time``,
``split``; ``sentences``: ``video_id``, ``caption``), and the 1k-A test csv
(``key,vid_key,video_id,sentence``) that most retrieval papers report on.

From the json: one row per video, all its (about 20) captions in ``captions``. With the csv
as well: only the csv's videos, each with the csv's sentence as ``caption``. The released
``videoN.mp4`` files are already cut to the clip, which ``--video-root`` finds.
"""

from __future__ import annotations

from video2numpy.youtube import parse_youtube_id

from . import register
from .core import expect, normalise_split, youtube_url
from .text import read_csv, read_json


@register(
    "msrvtt",
    "MSR-VTT (official json; optional 1k-A test csv)",
    "train_val_videodatainfo.json / test_videodatainfo.json [MSRVTT_JSFUSION_test.csv]",
)
def convert(paths, options, report):
    videos: dict[str, dict] = {}
    subset: list[tuple[str, str]] = []  # (video_id, sentence) from 1k-A csv files
    for path in paths:
        if path.lower().endswith((".csv", ".csv.gz")):
            for line, raw in read_csv(
                path, ("video_id", "sentence"), options.encoding, report=report
            ):
                expect(bool(raw["video_id"].strip()), path, "empty video_id", line)
                subset.append((raw["video_id"].strip(), raw["sentence"].strip()))
            continue
        data = read_json(path, options.encoding)
        expect(
            isinstance(data, dict) and "videos" in data,
            path,
            "expected the MSR-VTT json with 'videos' and 'sentences'",
        )
        for item in data["videos"]:
            video_id = str(item["video_id"])
            url = item.get("url")
            youtube_id = parse_youtube_id(url) if url else None
            videos[video_id] = {
                "id": video_id,
                "location": youtube_url(youtube_id) if youtube_id else url,
                "caption": None,
                "start": float(item["start time"]) if item.get("start time") is not None else None,
                "end": float(item["end time"]) if item.get("end time") is not None else None,
                "split": normalise_split(item.get("split")),
                "captions": [],
                "category": item.get("category"),
                "youtube_id": youtube_id,
                "_clip_file": video_id,
            }
        for sentence in data.get("sentences", []):
            video = videos.get(str(sentence["video_id"]))
            if video is not None:
                video["captions"].append(str(sentence["caption"]).strip())
    for video in videos.values():
        video["caption"] = video["captions"][0] if video["captions"] else None
    if not subset:
        return list(videos.values())
    rows = []
    for video_id, sentence in subset:
        video = videos.get(video_id)
        if video is None:  # the csv alone: the files under --video-root are the only source
            video = {"id": video_id, "location": None, "captions": [], "_clip_file": video_id}
        rows.append({**video, "caption": sentence, "split": "test"})
    if not videos:
        report.note("no MSR-VTT json given: rows have no URL, only --video-root files")
    return rows
