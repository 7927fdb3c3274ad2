"""The search page: one HTML document with its script; it talks to ``/api/search`` only.

Every text from a dataset (captions, ids, locations) is put in the page with
``textContent`` or as an attribute value set through the DOM, never as markup. The query and
its options live in the page's URL, so a result page can be bookmarked and shared.
"""

PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>clip-video-search</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
header { padding: 12px 16px; background: #fff; border-bottom: 1px solid #ddd; }
form { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; }
#q { flex: 1 1 320px; font-size: 16px; padding: 6px 8px; }
label { font-size: 12px; color: #555; }
input[type=number] { width: 64px; }
main { display: grid; grid-template-columns: minmax(320px, 1fr) minmax(320px, 1fr); gap: 16px;
       padding: 16px; }
#results { display: flex; flex-direction: column; gap: 10px; }
.card { display: grid; grid-template-columns: 160px 1fr; gap: 10px; background: #fff;
        border: 1px solid #ddd; border-radius: 6px; padding: 8px; cursor: pointer; }
.card:hover, .card.playing { border-color: #3a7bd5; }
.card img { width: 160px; height: 90px; object-fit: cover; background: #eee; }
.range { font-weight: 600; } .score { color: #3a7bd5; } .key { color: #777; font-size: 12px; }
.caption { margin-top: 2px; }
svg.curve { width: 100%; height: 48px; display: block; margin-top: 4px; }
#player-box { position: sticky; top: 16px; align-self: start; }
#player { width: 100%; max-height: 60vh; background: #000; }
#status { color: #555; margin: 0 16px; }
.error { color: #b00020; }
</style></head>
<body>
<header>
<form id="search">
  <input id="q" name="q" type="search" placeholder="a dog catches a frisbee" autofocus>
  <input id="image" name="image" type="file" accept="image/*" title="search by image">
  <label>top <input id="top" name="top" type="number" min="1" max="1000" value="10"></label>
  <label>threshold <input id="threshold" name="threshold" type="number" step="0.05" min="0"
    max="1" value="0.5"></label>
  <label>min gap s <input id="min_gap" name="min_gap" type="number" step="0.5" min="0"
    value="2"></label>
  <label>per video <input id="per_video" name="per_video" type="number" min="1" value="1">
    </label>
  <label>contrast <input id="contrast" name="contrast" type="text" placeholder="a video frame"
    size="12"></label>
  <label>search <select id="mode" name="mode"><option value="exact">exact</option>
    <option value="ann">ANN</option></select></label>
  <button id="go" type="submit">Search</button>
</form>
</header>
<p id="status"></p>
<main>
  <div id="results"></div>
  <div id="player-box"></div>
</main>
<script id="config" type="application/json">__CONFIG__</script>
<script>
"use strict";
const CONFIG = JSON.parse(document.getElementById("config").textContent);
const FIELDS = ["top", "threshold", "min_gap", "per_video", "contrast", "mode"];
const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function params() {
  const p = new URLSearchParams();
  for (const f of FIELDS) { const v = $(f).value; if (v !== "") p.set(f, v); }
  return p;
}

function curveSvg(hit) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "curve");
  svg.setAttribute("viewBox", "0 0 400 48");
  svg.setAttribute("preserveAspectRatio", "none");
  const t = hit.curve.t, s = hit.curve.s;
  if (!t.length) return svg;
  const t0 = t[0], t1 = Math.max(t[t.length - 1], hit.end_s), lo = Math.min(...s),
        hi = Math.max(...s);
  const x = (v) => 400 * (v - t0) / Math.max(t1 - t0, 1e-9);
  const y = (v) => 44 - 40 * (v - lo) / Math.max(hi - lo, 1e-9);
  const band = document.createElementNS(ns, "rect");
  band.setAttribute("x", x(hit.start_s)); band.setAttribute("y", 0);
  band.setAttribute("width", Math.max(x(hit.end_s) - x(hit.start_s), 2));
  band.setAttribute("height", 48); band.setAttribute("fill", "#3a7bd533");
  svg.appendChild(band);
  const line = document.createElementNS(ns, "polyline");
  const points = t.map((v, i) => x(v).toFixed(1) + "," + y(s[i]).toFixed(1));
  line.setAttribute("points", points.join(" "));
  line.setAttribute("fill", "none"); line.setAttribute("stroke", "#3a7bd5");
  svg.appendChild(line);
  return svg;
}

function play(hit, card) {
  document.querySelectorAll(".card.playing").forEach((c) => c.classList.remove("playing"));
  card.classList.add("playing");
  const box = $("player-box");
  box.replaceChildren();
  const start = Math.max(0, hit.start_s);
  if (hit.media.kind === "youtube") {
    const frame = el("iframe");
    frame.id = "player";
    frame.width = 640; frame.height = 360;
    frame.allow = "autoplay; encrypted-media";
    frame.src = "https://www.youtube.com/embed/" + encodeURIComponent(hit.media.id) +
      "?autoplay=1&start=" + Math.floor(start);
    box.appendChild(frame);
  } else if (hit.media.kind === "file" || hit.media.kind === "url") {
    const video = el("video");
    video.id = "player"; video.controls = true; video.muted = true; video.preload = "auto";
    video.addEventListener("loadedmetadata", () => {
      video.currentTime = start;
      video.play().catch(() => {});
    }, { once: true });
    video.src = hit.media.url;
    box.appendChild(video);
  } else {
    box.appendChild(el("p", "error", "this video's source cannot be played here"));
  }
  const info = el("p", "", hit.start_s.toFixed(2) + " - " + hit.end_s.toFixed(2) + " s  ");
  info.appendChild(el("span", "key", (hit.id || hit.key) + "  " + (hit.location || "")));
  box.appendChild(info);
}

function show(result) {
  const list = $("results");
  list.replaceChildren();
  const n = result.moments.length;
  $("status").textContent = n + " moments (" + result.kind + " query) in " +
    result.datasets.map((d) => d.frames + " frames of " + d.videos + " videos").join(", ");
  result.moments.forEach((hit, rank) => {
    const card = el("div", "card");
    card.dataset.rank = rank;
    card.dataset.key = hit.key;
    const img = el("img");
    img.loading = "lazy";
    img.alt = "frame at " + hit.peak_s.toFixed(2) + " s";
    img.src = "/thumb/" + hit.dataset + "/" + hit.video + "?t=" + hit.peak_s;
    card.appendChild(img);
    const text = el("div");
    const range = hit.start_s.toFixed(2) + " - " + hit.end_s.toFixed(2) + " s";
    text.appendChild(el("div", "range", range));
    text.appendChild(el("div", "score", "score " + hit.score.toFixed(4)));
    text.appendChild(el("div", "key", hit.key + (hit.id ? "  " + hit.id : "")));
    text.appendChild(el("div", "caption", hit.caption || ""));
    text.appendChild(curveSvg(hit));
    card.appendChild(text);
    card.addEventListener("click", () => play(hit, card));
    list.appendChild(card);
  });
}

async function answer(response) {
  const body = await response.json();
  if (!response.ok) { $("status").replaceChildren(el("span", "error", body.error)); return; }
  show(body);
}

async function searchText(push) {
  const q = $("q").value.trim();
  if (!q) return;
  const p = params(); p.set("q", q);
  if (push) history.pushState(null, "", "?" + p.toString());
  $("status").textContent = "searching...";
  await answer(await fetch("/api/search?" + p.toString()));
}

async function searchImage(file) {
  if (file.size > CONFIG.max_upload) {
    const message = "the image is over " + CONFIG.max_upload + " bytes";
    $("status").replaceChildren(el("span", "error", message));
    return;
  }
  const form = new FormData();
  form.append("image", file);
  $("status").textContent = "searching...";
  await answer(await fetch("/api/search?" + params().toString(), { method: "POST", body: form }));
}

$("search").addEventListener("submit", (e) => { e.preventDefault(); searchText(true); });
$("image").addEventListener("change", (e) => {
  if (e.target.files[0]) searchImage(e.target.files[0]);
});

function fromUrl() {
  const p = new URLSearchParams(location.search);
  for (const f of FIELDS) if (p.has(f)) $(f).value = p.get(f);
  $("q").value = p.get("q") || "";
  if ($("q").value) searchText(false);
}
window.addEventListener("popstate", fromUrl);
fromUrl();
</script>
</body></html>
"""
