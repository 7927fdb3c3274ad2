"""clip-video-mix's rules, each against an independent statement of it: a row's source and
window, when two windows are one clip (the fast path against the plain greedy), content
deduplication against brute force."""

import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clip_video_encode.mix.content import brute_force, deduplicate, pool
from clip_video_encode.mix.identity import (
    file_digest,
    normalise_url,
    row_source,
    table_sources,
    youtube_of_name,
)
from clip_video_encode.mix.windows import (
    _first_across_groups,
    excluded_partner,
    first_across_groups,
    greedy,
    iou,
    overlap_partner,
    partitioned,
)

YT = "abc_DEF-123"  # 11 characters, with the _ and - that ids may hold
NO_FILES = lambda location: None  # noqa: E731 (no file is readable)


@pytest.mark.parametrize(
    "row",
    [
        {"location": f"https://www.youtube.com/watch?v={YT}"},
        {"location": f"http://youtube.com/watch?v={YT}&t=10s#x"},
        {"location": f"https://m.youtube.com/watch?v={YT}&list=PL1"},
        {"location": f"youtu.be/{YT}?t=3"},
        {"location": f"https://youtu.be/{YT}"},
        {"location": f"https://www.youtube.com/shorts/{YT}"},
        {"location": f"https://www.youtube-nocookie.com/embed/{YT}?start=1"},
        {"location": f"HTTPS://WWW.YOUTUBE.COM/watch?v={YT}"},
        {"location": f"https://www.youtube.com:443/watch?feature=share&v={YT}"},
        {"location": f"  {YT}  "},
        {"youtube_id": YT, "location": "/data/k400/abseiling/x.mp4"},
        {"url": f"https://youtu.be/{YT}", "location": "s3://bucket/a.tar#00001.mp4"},
        {"id": f"{YT}_000010_000020", "location": "/videos/clip.mp4"},
        {"id": f"v_{YT}", "location": "/videos/v.mp4"},
        {"id": "7", "location": f"/data/anet/v_{YT}.mp4"},
        {"location": f"s3://bucket/k600/{YT}_000004_000014.mp4"},
    ],
)
def test_every_youtube_form_is_one_source(row):
    assert row_source(row, NO_FILES).source == f"youtube:{YT}"
    assert table_sources(pa.table({k: [v] for k, v in row.items()}), NO_FILES)[0][
        0].as_py() == f"youtube:{YT}"  # fmt: skip


def test_dataset_clip_names_and_windows():
    assert youtube_of_name(f"{YT}_000010_000020") == (YT, 10.0, 20.0)
    assert youtube_of_name(f"v_{YT}") == (YT, None, None)
    assert youtube_of_name("video123") is None and youtube_of_name(f"{YT}_12") is None
    assert youtube_of_name(f"x{YT}_000010_000020") is None  # 12 characters: no YouTube id
    # A clip file found under --video-root: the window is in clip_start/clip_end.
    found = row_source({"id": f"{YT}_000010_000020", "location": "/v/c.mp4", "start": None,
                        "clip_start": 10.5, "clip_end": 20.0}, NO_FILES)  # fmt: skip
    assert (found.start, found.end) == (10.5, 20.0)
    # Only the id says the window (a dataset encoded from clip files, no columns saved).
    found = row_source({"id": f"{YT}_000010_000020", "location": "/v/c.mp4"}, NO_FILES)
    assert (found.source, found.start, found.end) == (f"youtube:{YT}", 10.0, 20.0)
    # start/end win; a missing end is open; an empty window is the whole video.
    assert row_source({"location": YT, "start": 3.0}, NO_FILES)[1:3] == (3.0, math.inf)
    assert row_source({"location": YT, "start": 5.0, "end": 5.0}, NO_FILES)[1:3] == (
        0.0, math.inf)  # fmt: skip
    assert row_source({"location": YT, "start": float("nan"), "end": 4}, NO_FILES)[1:3] == (
        0.0, 4.0)  # fmt: skip


def test_urls_are_normalised():
    a = normalise_url("HTTP://User:pw@Example.COM:80/a%7Eb/c?b=2&utm_source=x&a=1#frag")
    b = normalise_url("https://example.com/a~b/c?a=1&b=2")
    assert a == b == "url:example.com/a~b/c?a=1&b=2"
    assert normalise_url("https://example.com:8443/x") == "url:example.com:8443/x"
    signed = "https://b.s3.amazonaws.com/v.mp4?X-Amz-Signature=abc&X-Amz-Expires=60"
    assert normalise_url(signed) == "url:b.s3.amazonaws.com/v.mp4"
    assert normalise_url("s3://bucket/v.mp4") is None and normalise_url("not a url") is None


def test_local_files_by_content_and_unreadable_ones_by_path(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"video bytes")
    (tmp_path / "copy of a.mp4").write_bytes(b"video bytes")
    (tmp_path / "b.mp4").write_bytes(b"other bytes")
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (5 << 20))
    sources = [row_source({"location": str(tmp_path / n)}) for n in (
        "a.mp4", "copy of a.mp4", "b.mp4", "gone.mp4")]  # fmt: skip
    assert sources[0].source == sources[1].source != sources[2].source
    assert sources[0].kind == "digest" and sources[0].source.startswith("sha256:")
    assert sources[3] == (f"path:{tmp_path / 'gone.mp4'}", 0.0, math.inf, "path")
    assert file_digest(str(big)).startswith("sha256:")  # size, first and last 2 MiB
    assert row_source({"location": None}).source is None
    member = row_source({"location": "https://h.org/d/00001.tar#000010002.mp4"})
    assert member.source == "member:h.org/d/00001.tar#000010002.mp4"


# -- the vectorised form is the rule, row for row ------------------------------------------

_ids = st.sampled_from([YT, "zzzzzzzzzz9", "-leading_AB", "short", "video0", "x" * 12, ""])
_hosts = st.sampled_from(["www.youtube.com", "youtube.com", "m.youtube.com", "youtu.be",
                          "WWW.YouTube.com", "example.com", "cdn.Example.org", "youtube.com:8080",
                          "youtube-nocookie.com", "user@example.com"])  # fmt: skip
_paths = st.sampled_from(["/watch?v={}", "/embed/{}", "/shorts/{}/x", "/{}", "/a%20b/{}.mp4",
                          "/watch?x=1&v={}", "/v/{}?t=2", "/watch?v={}#t=3", "/path/{}.mp4?b=1&a=2",
                          "/{}_000001_000005.mp4"])  # fmt: skip


@st.composite
def locations(draw):
    kind = draw(st.sampled_from(["url", "bare", "path", "s3", "member", "none", "text"]))
    ident = draw(_ids)
    if kind == "url":
        scheme = draw(st.sampled_from(["https://", "http://", "", "HTTP://", " https://"]))
        return scheme + draw(_hosts) + draw(_paths).format(ident)
    if kind == "bare":
        return draw(st.sampled_from(["{}", " {} ", "{}\n"])).format(ident)
    if kind == "path":
        forms = ["/data/{}.mp4", "/data/v_{}.mp4", "rel/{}_1_2.webm", "/d/{}_000001_000002.mp4",
                 "file:///x/{}.mp4"]  # fmt: skip
        return draw(st.sampled_from(forms)).format(ident)
    if kind == "s3":
        return f"s3://bucket/{ident}_000003_000009.mp4"
    if kind == "member":
        return f"https://h.org/{ident}.tar#000000001.mp4"
    if kind == "none":
        return None
    return draw(st.text(max_size=20))


@st.composite
def rows(draw):
    row = {"location": draw(locations())}
    if draw(st.booleans()):
        row["youtube_id"] = draw(st.one_of(st.none(), _ids, st.sampled_from([f" {YT}"])))
    if draw(st.booleans()):
        row["url"] = draw(st.one_of(st.none(), locations()))
    if draw(st.booleans()):
        row["id"] = draw(st.one_of(st.none(), _ids.map(lambda i: f"{i}_000010_000020"),
                                   _ids.map(lambda i: f"v_{i}"), _ids))  # fmt: skip
    for name in ("start", "end", "clip_start", "clip_end"):
        if draw(st.booleans()):
            row[name] = draw(st.one_of(st.none(), st.floats(-5, 50), st.just(float("nan"))))
    return row


def _column_table(batch: list[dict]) -> pa.Table:
    names = sorted({k for r in batch for k in r})
    numbers = {"start", "end", "clip_start", "clip_end"}
    return pa.table({n: pa.array([r.get(n) for r in batch], pa.float64() if n in numbers
                                 else pa.string(), from_pandas=True) for n in names})  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.lists(rows(), min_size=1, max_size=30))
def test_table_sources_equal_row_source(batch):
    sources, starts, ends, kinds = table_sources(_column_table(batch), NO_FILES)
    for i, row in enumerate(batch):
        expected = row_source(row, NO_FILES)
        assert sources[i].as_py() == expected.source, row
        assert (starts[i], ends[i]) == (expected.start, expected.end), row


# -- windows ----------------------------------------------------------------------------------


def test_overlap_is_strict_and_iou_handles_open_windows():
    kept = (np.array([0, 0, 1]), np.array([0.0, 30.0, 0.0]), np.array([10.0, 40.0, np.inf]))
    query = (np.array([0, 0, 0, 1, 2]), np.array([10.0, 9.0, 20.0, 100.0, 0.0]),
             np.array([20.0, 11.0, 30.0, 101.0, 5.0]))  # fmt: skip
    assert overlap_partner(*kept, *query).tolist() == [-1, 0, -1, 2, -1]
    assert iou(0, 10, 5, 15) == pytest.approx(5 / 15)
    assert iou(0, np.inf, 0, np.inf) == 1.0 and iou(0, np.inf, 0, 10) == 0.0


@st.composite
def interval_rows(draw):
    n = draw(st.integers(1, 40))
    code = np.array(draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)))
    start = np.array(draw(st.lists(st.integers(0, 20), min_size=n, max_size=n)), np.float64)
    length = draw(st.lists(st.one_of(st.integers(1, 10), st.just(10**9)), min_size=n, max_size=n))
    end = np.where(np.array(length) == 10**9, np.inf, start + np.array(length))
    group = np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)))
    return code, start, end, group


@settings(max_examples=80, deadline=None)
@given(interval_rows())
def test_fast_same_source_equals_the_greedy_rule(data):
    code, start, end, group = data
    order = np.lexsort((np.arange(len(code)), group))  # rows in input order: what --keep first
    rank = np.empty(len(code), np.int64)
    rank[order] = np.arange(len(code))
    fast = first_across_groups(code, start, end, group)
    slow = greedy(code, start, end, group, rank)
    assert ((fast >= 0) == (slow >= 0)).all()
    in_parts = partitioned(_first_across_groups, code, start, end, group, parts=3)
    assert (in_parts == fast).all()  # rows of a source are in one part: the same answer
    for r in np.flatnonzero(fast >= 0):  # every partner is a kept row of an earlier input
        p = fast[r]
        assert fast[p] < 0 and group[p] < group[r] and code[p] == code[r]
        assert start[p] < end[r] and start[r] < end[p]
    kept = np.flatnonzero(fast < 0)  # and no two kept rows of two inputs are one clip
    for a in kept:
        for b in kept:
            if group[a] != group[b] and code[a] == code[b]:
                assert not (start[a] < end[b] and start[b] < end[a])


@settings(max_examples=40, deadline=None)
@given(interval_rows(), interval_rows(), st.sampled_from([2_000_000, 7]))
def test_exclusion_by_video_and_by_window(rows_, evaluation, part_rows):
    import clip_video_encode.mix.windows as windows

    windows.PART_ROWS = part_rows  # 7: in parts, as ten million rows are
    code, start, end, _ = rows_
    ecode, estart, eend, _ = evaluation
    video = excluded_partner(code, start, end, ecode, estart, eend, "video")
    assert ((video >= 0) == np.isin(code, ecode)).all()
    window = excluded_partner(code, start, end, ecode, estart, eend, "window")
    expected = [any(ecode[j] == code[i] and estart[j] < end[i] and start[i] < eend[j]
                    for j in range(len(ecode))) for i in range(len(code))]  # fmt: skip
    assert ((window >= 0) == np.array(expected)).all()
    at_half = excluded_partner(code, start, end, ecode, estart, eend, "window", 0.5)
    expected = [any(ecode[j] == code[i] and iou(start[i], end[i], estart[j], eend[j]) >= 0.5
                    for j in range(len(ecode))) for i in range(len(code))]  # fmt: skip
    assert ((at_half >= 0) == np.array(expected)).all()
    windows.PART_ROWS = 2_000_000


# -- content ----------------------------------------------------------------------------------


def test_pool_is_the_mean_aggregator():
    import torch

    from clip_video_encode.video_models.aggregators import load_aggregator

    frames = np.random.default_rng(0).standard_normal((7, 16)).astype(np.float16)
    mean = load_aggregator("mean", 16, 8, "cpu")
    expected = mean(torch.from_numpy(np.concatenate([frames, np.zeros((1, 16), np.float16)])
                                     [None].astype(np.float32)),
                    torch.tensor([[True] * 7 + [False]]))[0].numpy()  # fmt: skip
    np.testing.assert_allclose(pool(frames), expected, atol=1e-6)


def _planted(seed: int, n: int = 400, dim: int = 32):
    """Distinct unit vectors, noisy copies of the first quarter (cosine about 0.997), and
    evaluation vectors near the last five distinct ones."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, dim))
    copies = base[: n // 4] + 0.08 * rng.standard_normal((n // 4, dim))
    x = np.concatenate([base, copies])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    reference = x[n - 5 : n] + 0.05 * rng.standard_normal((5, dim))
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    return x.astype(np.float32), reference.astype(np.float32), rng


@pytest.mark.parametrize("seed", [0, 1])
def test_one_cluster_equals_brute_force(seed, monkeypatch):
    import clip_video_encode.mix.content as content

    monkeypatch.setattr(content, "BLOCK", 37)  # several blocks and column slices per cluster
    monkeypatch.setattr(content, "COLUMNS", 50)
    x, _, rng = _planted(seed)
    rank = rng.permutation(len(x))
    group = rng.integers(0, 3, len(x))
    source = rng.integers(0, 60, len(x))
    for eps in (0.01, 0.05, 0.2):
        result = deduplicate(x, rank, eps, k=1, group=group, source=source)
        expected = brute_force(x, rank, eps, group, source)
        assert ((result.partner >= 0) == (expected >= 0)).all()
        removed = np.flatnonzero(result.partner >= 0)
        assert (x[removed] * x[result.partner[removed]]).sum(1).min() >= 1 - eps - 1e-6
        assert (rank[result.partner[removed]] < rank[removed]).all()  # an earlier row stays
    assert (deduplicate(x, rank, 0.05, k=1).partner >= 0).sum() == len(x) // 5


def test_clusters_find_planted_copies_and_evaluation_neighbours():
    x, reference, rng = _planted(3)
    rank = np.arange(len(x))
    result = deduplicate(x, rank, 0.05, k=4, reference=reference)
    n = 400
    removed = set(np.flatnonzero(result.partner >= 0).tolist())
    leaked = set(np.flatnonzero(result.reference_partner >= 0).tolist())
    assert leaked == set(range(n - 5, n))
    assert removed <= set(range(n, n + n // 4)) and len(removed) >= 0.9 * (n // 4)
    assert np.nanmax(result.nearest[: n // 4]) < 0.95 < np.nanmin(result.nearest[sorted(removed)])


def test_a_chain_of_near_copies_keeps_its_ends():
    """a~b and b~c but a and c apart: b goes (a stayed), c stays (b did not)."""
    a = np.array([1.0, 0.0])
    b = np.array([np.cos(0.25), np.sin(0.25)])
    c = np.array([np.cos(0.5), np.sin(0.5)])
    x = np.stack([a, b, c]).astype(np.float32)
    eps = 1 - np.cos(0.3)  # a-b and b-c within eps, a-c not
    result = deduplicate(x, np.arange(3), eps, k=1)
    assert result.partner.tolist() == [-1, 0, -1]
    assert brute_force(x, np.arange(3), eps).tolist() == [-1, 0, -1]
