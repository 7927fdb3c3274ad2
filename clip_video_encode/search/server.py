"""``clip-video-search serve DATASET [DATASET ...]``: search inside videos from a web page.

The index and the text tower are loaded once, when the server starts (the image tower on the
first image query), so a query costs the search itself: tens of milliseconds at 100k frames.
The page (``/``) and its JSON API (``/api/search``) are served by Starlette under uvicorn.

Security: it binds to 127.0.0.1 unless told otherwise. Media are addressed by dataset and
video number (``/media/0/17``), never by a path: the only files served are the local sources
of the datasets' own videos, looked up in their index. Uploads over ``max_upload`` bytes are
refused, and pictures over ``max_pixels`` from their header, before they are decoded. The
page puts captions and ids in the document as text, never as markup.

Load: the event loop only parses requests and sends answers. Everything that takes CPU
(embedding a query, scoring, decoding a picture, grabbing a thumbnail) runs in worker
threads, at most ``concurrency`` searches and a few thumbnails at once (torch and numpy
release the GIL), so a slow query never holds up the page, a video's bytes or a cheap query
while a thread is free. The shared towers and indexes are only read by a query.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from urllib.parse import unquote, urlparse

from .images import MAX_PIXELS, ImageTooLarge, load_image
from .moments import MomentOptions
from .page import PAGE
from .report import thumbnail_jpeg
from .session import SearchSession, Towers

MAX_UPLOAD = 8 << 20  # bytes of an image query
CONCURRENCY = 4  # searches at once
THUMBNAILS = 2  # thumbnails grabbed at once


def local_path(location: str | None) -> str | None:
    """The local file a video's location names, or None (http, s3, YouTube, ...): the
    pipeline's own rule (:func:`video2numpy.fetch.location_kind`), so a bare YouTube id or a
    scheme-less YouTube URL is a YouTube video, unless a file of that name exists."""
    from video2numpy.fetch import location_kind

    if not location or location_kind(location) != "local":
        return None
    if location.startswith("file://"):
        return unquote(urlparse(location).path)
    return location


def create_app(sessions: list[SearchSession], max_upload: int = MAX_UPLOAD,
               max_pixels: int = MAX_PIXELS, concurrency: int = CONCURRENCY):  # fmt: skip
    """The Starlette application over ``sessions`` (one per dataset): at most
    ``concurrency`` searches run at once, in threads off the event loop."""
    from anyio import CapacityLimiter, to_thread
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    if concurrency < 1:
        raise ValueError("concurrency: at least 1 search at a time")
    searches, grabs = CapacityLimiter(concurrency), CapacityLimiter(THUMBNAILS)

    async def in_pool(limiter, function, *args):
        return await to_thread.run_sync(function, *args, limiter=limiter)

    thumbs: OrderedDict[tuple, bytes] = OrderedDict()
    thumbs_lock = threading.Lock()
    datasets = [{"name": s.dataset, "model": s.model, "frames": len(s.index),
                 "videos": len(s.index.videos)} for s in sessions]  # fmt: skip

    def options_of(params) -> tuple[int, MomentOptions, str | None, bool]:
        def number(name, kind, default, lo=None, hi=None):
            raw = params.get(name)
            try:
                value = kind(raw) if raw not in (None, "") else default
            except ValueError as exc:
                raise ValueError(f"{name}: not a number: {raw!r}") from exc
            if lo is not None:
                value = max(lo, value)
            return min(hi, value) if hi is not None else value

        top = number("top", int, 10, 1, 1000)
        options = MomentOptions(number("threshold", float, 0.5, 0.0, 1.0),
                                number("min_gap", float, 2.0, 0.0),
                                number("smooth", int, 1, 1, 1000),
                                number("per_video", int, 1, 1, 100))  # fmt: skip
        contrast = (params.get("contrast") or "").strip() or None
        ann = params.get("mode") == "ann"
        if ann and contrast:
            raise ValueError("contrast needs the exact search (mode=exact)")
        return top, options, contrast, ann

    def run_search(embed, params) -> dict:
        top, options, contrast, ann = options_of(params)
        hits = []
        for d, session in enumerate(sessions):
            query = embed(session)
            c = session.embed_text(contrast) if contrast else None
            for hit in session.search(query, top, options, c, ann):
                hits.append({**hit.as_dict(), "dataset": d,
                             "media": _media(d, hit.moment.video, hit.location)})  # fmt: skip
        hits.sort(key=lambda h: (-h["score"], h["dataset"], h["key"], h["start_s"]))
        return {"moments": hits[:top], "datasets": datasets}

    async def page(request: Request) -> Response:
        data = json.dumps({"datasets": datasets, "max_upload": max_upload})
        # JSON inside a <script>: "<" escaped, so no text can close the element.
        return HTMLResponse(PAGE.replace("__CONFIG__", data.replace("<", "\\u003c")))

    async def search_get(request: Request) -> Response:
        text = (request.query_params.get("q") or "").strip()
        if not text:
            return JSONResponse({"error": "q: the text to search for"}, status_code=400)
        try:
            result = await in_pool(searches, run_search, lambda s: s.embed_text(text),
                                   request.query_params)  # fmt: skip
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"query": text, "kind": "text", **result})

    async def search_post(request: Request) -> Response:
        size = request.headers.get("content-length") or ""
        if size.isdigit() and int(size) > max_upload + 65536:
            return JSONResponse({"error": f"the upload is over {max_upload} bytes"}, 413)
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > max_upload + 65536:
                return JSONResponse({"error": f"the upload is over {max_upload} bytes"}, 413)
        from starlette.datastructures import Headers
        from starlette.formparsers import MultiPartParser

        async def replay():
            yield bytes(body)

        try:
            form = await MultiPartParser(Headers(scope=request.scope), replay(),
                                         max_part_size=max_upload + 1).parse()  # fmt: skip
        except Exception as exc:  # a body that is not a multipart form
            return JSONResponse({"error": f"expected a multipart form: {exc}"}, 400)
        upload = form.get("image")
        if upload is None or isinstance(upload, str):
            return JSONResponse({"error": "image: the picture to search for"}, 400)
        data = await upload.read()
        if len(data) > max_upload:
            return JSONResponse({"error": f"the upload is over {max_upload} bytes"}, 413)
        params = {**dict(request.query_params), **{k: v for k, v in form.items()
                                                   if isinstance(v, str)}}  # fmt: skip

        def decode_and_search():
            pixels = load_image(data, max_pixels)
            return run_search(lambda s: s.embed_image(pixels), params)

        try:
            result = await in_pool(searches, decode_and_search)
        except ImageTooLarge as exc:
            return JSONResponse({"error": str(exc)}, status_code=413)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"query": upload.filename or "image", "kind": "image", **result})

    def _video(request: Request) -> tuple[SearchSession, dict] | None:
        try:
            d, v = int(request.path_params["dataset"]), int(request.path_params["video"])
        except ValueError:
            return None
        if not 0 <= d < len(sessions) or not 0 <= v < len(sessions[d].index.videos):
            return None
        return sessions[d], sessions[d].index.videos[v]

    async def media(request: Request) -> Response:
        found = _video(request)
        path = local_path(found[1].get("location")) if found else None
        if path is None or not os.path.isfile(path):
            return Response("not found", status_code=404)
        return FileResponse(path)  # answers Range requests (seeking in the page)

    async def thumbnail(request: Request) -> Response:
        found = _video(request)
        if found is None:
            return Response("not found", status_code=404)
        try:
            seconds = max(0.0, float(request.query_params.get("t", "0")))
        except ValueError:
            return Response("t: seconds", status_code=400)
        key = (request.path_params["dataset"], request.path_params["video"], round(seconds, 2))
        with thumbs_lock:
            data = thumbs.get(key)
        if data is None:
            location = found[1].get("location")
            data = await in_pool(grabs, thumbnail_jpeg, location, seconds) if location else None
            if data is None:
                return Response("source not reachable", status_code=404)
            with thumbs_lock:
                thumbs[key] = data
                while len(thumbs) > 512:
                    thumbs.popitem(last=False)
        return Response(data, media_type="image/jpeg")

    routes = [
        Route("/", page),
        Route("/api/search", search_get, methods=["GET"]),
        Route("/api/search", search_post, methods=["POST"]),
        Route("/media/{dataset}/{video}", media),
        Route("/thumb/{dataset}/{video}", thumbnail),
    ]
    return Starlette(routes=routes)


def _media(dataset: int, video: int, location: str | None) -> dict:
    """How the page plays a video: from this server (a local file), as a YouTube embed (every
    form the pipeline takes: URLs with or without a scheme, bare ids), or from its URL."""
    from video2numpy.fetch import location_kind
    from video2numpy.youtube import parse_youtube_id

    kind = location_kind(location) if location else None
    if kind == "local":
        return {"kind": "file", "url": f"/media/{dataset}/{video}"}
    if kind == "youtube":
        return {"kind": "youtube", "id": parse_youtube_id(location)}
    if kind == "http":
        return {"kind": "url", "url": location}
    return {"kind": "none"}


def serve(datasets: list[str], host: str = "127.0.0.1", port: int = 8000,
          pretrained: str | None = None, device: str = "auto",
          max_upload: int = MAX_UPLOAD, memory_budget: int = 4 << 30,
          max_pixels: int = MAX_PIXELS, concurrency: int = CONCURRENCY) -> None:  # fmt: skip
    import uvicorn

    towers = Towers(device)
    sessions = [SearchSession(d, pretrained, towers, device, memory_budget=memory_budget)
                for d in datasets]  # fmt: skip
    app = create_app(sessions, max_upload, max_pixels, concurrency)
    uvicorn.run(app, host=host, port=port, log_level="warning")
