"""An HTML page of search results that opens without a server: for each moment a thumbnail
grabbed from the source video at its best frame (when the source is reachable), its time
range, score and caption, and the video's similarity over time with the moment marked.
Images are inline (base64 JPEG) and plots inline SVG, so the file can be mailed or archived.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np

from video2numpy import FrameOptions, Resize, Sampling, read_videos

from .index import SearchIndex
from .moments import Moment

THUMB_WIDTH = 240


def thumbnail(location: str, seconds: float, timeout: float = 60.0) -> str | None:
    """A JPEG data URI of the frame at ``seconds`` of the video, or None if it cannot be read."""
    data = thumbnail_jpeg(location, seconds, timeout)
    if data is None:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


def thumbnail_jpeg(location: str, seconds: float, timeout: float = 60.0) -> bytes | None:
    """The JPEG bytes of the frame at ``seconds`` of the video, or None if it cannot be read."""
    from PIL import Image

    source = {"location": location, "start": max(0.0, seconds - 5e-4), "end": seconds + 0.5}
    options = FrameOptions(Sampling(num_frames=1), Resize(0, "native"))
    try:
        frames, record = next(read_videos([source], options, workers=0, timeout=timeout))
    except Exception:
        return None
    if record["status"] != "success" or not len(frames):
        return None
    image = Image.fromarray(frames[0])
    image.thumbnail((THUMB_WIDTH, THUMB_WIDTH * 4))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def curve_svg(times: np.ndarray, scores: np.ndarray, moment: Moment, width=420, height=90) -> str:
    """The similarity curve as an SVG polyline, the moment shaded, its best frame marked."""
    if len(times) == 0:
        return ""
    t0, t1 = float(times.min()), float(max(times.max(), moment.end_s))
    lo, hi = float(scores.min()), float(scores.max())
    span_t, span_s = max(t1 - t0, 1e-9), max(hi - lo, 1e-9)

    def x(t: float) -> float:
        return 4 + (width - 8) * (t - t0) / span_t

    def y(s: float) -> float:
        return height - 14 - (height - 22) * (s - lo) / span_s

    points = " ".join(f"{x(t):.1f},{y(s):.1f}" for t, s in zip(times, scores, strict=True))
    left, band = x(moment.start_s), max(x(moment.end_s) - x(moment.start_s), 2.0)
    peak_x, peak_y = x(moment.peak_s), y(min(moment.score, hi))
    return (
        f'<svg class="curve" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        ' xmlns="http://www.w3.org/2000/svg">'
        f'<rect x="{left:.1f}" y="4" width="{band:.1f}" height="{height - 18}" fill="#ffd54f"'
        ' opacity="0.5"/>'
        f'<polyline points="{points}" fill="none" stroke="#1565c0" stroke-width="1.5"/>'
        f'<circle cx="{peak_x:.1f}" cy="{peak_y:.1f}" r="3" fill="#c62828"/>'
        f'<text x="4" y="{height - 2}" font-size="10">{t0:.1f} s</text>'
        f'<text x="{width - 4}" y="{height - 2}" font-size="10" text-anchor="end">{t1:.1f} s</text>'
        "</svg>"
    )


def write_report(
    path: str,
    index: SearchIndex,
    moments: list[Moment],
    scores: np.ndarray,
    query: str,
    thumbnails: bool = True,
) -> None:
    """Write the page; ``scores`` are the per-frame scores the moments were found with."""
    rows = []
    for rank, m in enumerate(moments, 1):
        video = index.videos[m.video]
        times, curve = index.curve(m.video, scores)
        uri = thumbnail(video["location"], m.peak_s) if thumbnails and video["location"] else None
        image = (
            f'<img class="thumb" src="{uri}" alt="frame at {m.peak_s:.2f} s">'
            if uri
            else '<div class="thumb missing">source not reachable</div>'
        )
        caption = html.escape(video.get("caption") or "")
        rows.append(
            f'<tr class="hit"><td class="rank">{rank}</td><td>{image}</td>'
            f'<td><div class="range">{m.start_s:.2f} - {m.end_s:.2f} s</div>'
            f'<div class="score">score {m.score:.4f}</div>'
            f'<div class="key">{html.escape(m.key)} {html.escape(m.id or "")}</div>'
            f'<div class="caption">{caption}</div>'
            f'<div class="location">{html.escape(video["location"] or "")}</div></td>'
            f"<td>{curve_svg(times, curve, m)}</td></tr>"
        )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>clip-video-search: {html.escape(query)}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; }}
table {{ border-collapse: collapse; }}
td {{ padding: 8px; border-bottom: 1px solid #ddd; vertical-align: top; }}
.thumb {{ width: {THUMB_WIDTH}px; }}
.missing {{ height: 120px; background: #eee; color: #777; display: flex;
  align-items: center; justify-content: center; }}
.range {{ font-weight: bold; }} .key, .location {{ color: #666; font-size: 12px; }}
</style></head><body>
<h1>{html.escape(query)}</h1>
<p>{len(moments)} moments from {len(index)} frames of {len(index.videos)} videos
({html.escape(str(index.info.get("model")))}, {html.escape(str(index.info.get("pretrained")))})</p>
<table>{"".join(rows)}</table>
</body></html>
"""
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
