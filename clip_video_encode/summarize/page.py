"""An HTML page of summaries that opens without a server: per video a timeline (shots as
bands, the selected ones highlighted, boundaries, the frame-score curve) and a thumbnail of
each selected shot, grabbed from the source at the shot's middle. Images are inline JPEG and
the timeline inline SVG, so the file can be mailed or archived."""

from __future__ import annotations

import html

from ..search.report import thumbnail
from .summary import VideoSummary

WIDTH, HEIGHT = 900, 120


def timeline_svg(summary: VideoSummary) -> str:
    """Shots, selection, boundaries and the score curve over the video's time."""
    span = max(summary.duration, 1e-9)
    scores = summary.frame_scores
    lo = float(scores.min()) if len(scores) else 0.0
    hi = float(scores.max()) if len(scores) else 1.0
    rise = max(hi - lo, 1e-9)

    def x(t: float) -> float:
        return 4 + (WIDTH - 8) * t / span

    def y(s: float) -> float:
        return HEIGHT - 18 - (HEIGHT - 28) * (s - lo) / rise

    parts = []
    for k, shot in enumerate(summary.shots):
        left, right = x(shot.start_s), x(shot.end_s)
        fill = "#ffd54f" if shot.selected else ("#eceff1" if k % 2 else "#cfd8dc")
        kind = "shot selected" if shot.selected else "shot"
        parts.append(
            f'<rect class="{kind}" data-start="{shot.start_s:.3f}" data-end="{shot.end_s:.3f}"'
            f' x="{left:.1f}" y="4" width="{max(right - left, 0.5):.1f}" height="{HEIGHT - 22}"'
            f' fill="{fill}"><title>{shot.start_s:.2f}-{shot.end_s:.2f} s, score'
            f" {shot.score:.4f}</title></rect>"
        )
        if k:
            parts.append(
                f'<line class="boundary" x1="{left:.1f}" x2="{left:.1f}" y1="4"'
                f' y2="{HEIGHT - 18}" stroke="#455a64" stroke-width="1"/>'
            )
    points = " ".join(
        f"{x(float(t)):.1f},{y(float(s)):.1f}"
        for t, s in zip(summary.timestamps, scores, strict=True)
    )
    parts.append(
        f'<polyline class="scores" points="{points}" fill="none" stroke="#1565c0"'
        ' stroke-width="1.5"/>'
    )
    parts.append(f'<text x="4" y="{HEIGHT - 4}" font-size="11">0 s</text>')
    parts.append(
        f'<text x="{WIDTH - 4}" y="{HEIGHT - 4}" font-size="11" text-anchor="end">'
        f"{summary.duration:.1f} s</text>"
    )
    return (
        f'<svg class="timeline" width="{WIDTH}" height="{HEIGHT}"'
        f' viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg">'
        f"{''.join(parts)}</svg>"
    )


def video_section(summary: VideoSummary, thumbnails: bool = True) -> str:
    info = summary.info
    location = info.get("location") or ""
    figures = []
    for shot in summary.shots:
        if not shot.selected:
            continue
        middle = (shot.start_s + shot.end_s) / 2
        uri = thumbnail(location, middle) if thumbnails and location else None
        image = (
            f'<img class="thumb" src="{uri}" alt="frame at {middle:.2f} s">'
            if uri
            else '<div class="thumb missing">source not reachable</div>'
        )
        figures.append(
            f'<figure class="selected-shot">{image}<figcaption>{shot.start_s:.2f} -'
            f" {shot.end_s:.2f} s, score {shot.score:.4f}</figcaption></figure>"
        )
    title = html.escape(f"{info.get('key', '')} {info.get('id') or ''}".strip())
    caption = html.escape(info.get("caption") or "")
    chosen = sum(s.selected for s in summary.shots)
    return (
        f'<section class="video"><h2>{title}</h2><div class="caption">{caption}</div>'
        f'<div class="facts">{len(summary.shots)} shots, {chosen} selected:'
        f" {summary.summary_seconds:.1f} s of {summary.duration:.1f} s (budget"
        f" {summary.capacity / summary.fps:.1f} s)</div>"
        f"{timeline_svg(summary)}"
        f'<div class="thumbs">{"".join(figures)}</div>'
        f'<div class="location">{html.escape(location)}</div></section>'
    )


def write_page(
    path: str, summaries: list[VideoSummary], title: str, thumbnails: bool = True
) -> None:
    sections = "".join(video_section(s, thumbnails) for s in summaries)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; }}
section.video {{ margin-bottom: 32px; border-bottom: 1px solid #ddd; padding-bottom: 16px; }}
.facts, .location, .caption {{ color: #555; font-size: 13px; margin: 4px 0; }}
.thumbs {{ display: flex; flex-wrap: wrap; gap: 8px; }}
figure {{ margin: 0; font-size: 12px; }}
.thumb {{ width: 200px; }}
.missing {{ height: 110px; background: #eee; color: #777; display: flex;
  align-items: center; justify-content: center; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
{sections}
</body></html>
"""
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
