"""An S3 destination and source, against a real S3-compatible server (moto) on 127.0.0.1."""

import json
import os

import numpy as np
import pytest

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")


@pytest.fixture(scope="module")
def s3(monkeypatch_module):
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for name, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch_module.setenv(name, value)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(endpoint_url=endpoint)
    fs.mkdir("videos-bucket")
    yield fs
    s3fs.S3FileSystem.clear_instance_cache()
    server.stop()


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_encode_from_and_to_s3(s3, weights):
    from clip_video_encode.read import iter_samples

    assert encode_to("s3://videos-bucket/out", weights[0]) == 1  # one row is missing
    listing = sorted(p.split("/")[-1] for p in s3.ls("videos-bucket/out"))
    assert listing == ["00000.parquet", "00000.tar", "00000_stats.json", "README.md", "run.json"]
    stats = json.loads(s3.cat("videos-bucket/out/00000_stats.json"))
    assert stats["status_dict"] == {"failed_to_fetch": 1, "success": 1}
    samples = list(iter_samples("s3://videos-bucket/out"))
    assert (
        len(samples) == 1 and samples[0][1].shape == (3, 384) and samples[0][2]["caption"] == "one"
    )
    assert np.isfinite(samples[0][1].astype(np.float32)).all()
    # resumes: the shard is done (exit 1: its missing row failed)
    assert encode_to("s3://videos-bucket/out", weights[0]) == 1
    assert encode_to("s3://videos-bucket/out", weights[0], "--allow-failures") == 0


def encode_to(dest, weights, *extra):
    from clip_video_encode.cli import main

    argv = ["s3://videos-bucket/in/table.csv", "--dest", dest, "--model", "ViT-S-32",
            "--pretrained", str(weights), "--fps", "1", "--workers", "1", "--quiet"]  # fmt: skip
    return main([*argv, *extra])


@pytest.fixture(scope="module")
def weights(s3, videos, tmp_path_factory):
    """Two random checkpoints, and the input table on S3 (one video, one missing)."""
    torch = pytest.importorskip("torch")
    import open_clip

    s3.put(videos["cfr.mp4"], "videos-bucket/in/cfr.mp4")
    s3.pipe(
        "videos-bucket/in/table.csv",
        b"location,caption\ns3://videos-bucket/in/cfr.mp4,one\n"
        b"s3://videos-bucket/in/absent.mp4,two\n",
    )
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        path = tmp_path_factory.mktemp("w") / f"w{seed}.pt"
        torch.save(open_clip.create_model("ViT-S-32").state_dict(), path)
        paths.append(path)
    return paths


def test_files_output_format_commits_on_s3(s3, weights):
    from clip_video_encode.read import iter_samples

    dest = "s3://videos-bucket/files"
    assert encode_to(dest, weights[0], "--output-format", "files") == 1  # one row is missing
    listing = sorted(p.split("/")[-1] for p in s3.ls("videos-bucket/files", refresh=True))
    assert listing == ["00000", "00000.parquet", "00000_stats.json", "run.json"]
    files = sorted(p.split("/")[-1] for p in s3.find("videos-bucket/files/00000"))
    assert files == [f"00000000{i}.{ext}" for i in (0, 1) for ext in ("json", "npy", "txt")]
    assert not s3.find("videos-bucket/files/00000.partial")
    samples = list(iter_samples(dest))
    assert len(samples) == 1 and samples[0][1].shape == (3, 384)
    assert encode_to(dest, weights[0], "--output-format", "files") == 1  # resumes; row failed


def test_readers_see_shards_committed_since_they_last_listed(s3, weights):
    import s3fs

    from clip_video_encode.read import shard_urls

    dest = "s3://videos-bucket/growing"
    assert encode_to(dest, weights[0], "--allow-failures") == 0
    assert [u.rsplit("/", 1)[-1] for u in shard_urls(dest)] == ["00000.tar"]
    # Another process commits a second shard.
    other = s3fs.S3FileSystem(skip_instance_cache=True)
    for ext in (".tar", ".parquet"):
        other.copy(f"videos-bucket/growing/00000{ext}", f"videos-bucket/growing/00001{ext}")
    other.copy("videos-bucket/growing/00000_stats.json", "videos-bucket/growing/00001_stats.json")
    assert [u.rsplit("/", 1)[-1] for u in shard_urls(dest)] == ["00000.tar", "00001.tar"]


def test_search_index_follows_a_dataset_encoded_again(s3, weights, tmp_path, monkeypatch):
    """The same URL, the same shard names, other weights: the cached index is rebuilt."""
    from clip_video_encode.read import iter_samples
    from clip_video_encode.search import SearchIndex, build_index

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    dest = "s3://videos-bucket/again"

    def indexed_matches_dataset():
        index = SearchIndex(build_index(dest))
        ((_, embeddings, _),) = list(iter_samples(dest))
        e = embeddings.astype(np.float32)
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        return index, np.allclose(index.embeddings.astype(np.float32), e, atol=2e-3)

    assert encode_to(dest, weights[0], "--allow-failures") == 0
    first, ok = indexed_matches_dataset()
    assert ok and first.info["pretrained"].endswith("w0.pt")
    s3.rm("videos-bucket/again", recursive=True)
    s3.invalidate_cache()
    assert encode_to(dest, weights[1], "--allow-failures") == 0
    second, ok = indexed_matches_dataset()
    assert second.info["shards"] == first.info["shards"]  # the names alone would match
    assert ok and second.info["pretrained"].endswith("w1.pt")


class _Refusing:
    """A proxy on 127.0.0.1 in front of the S3 server that answers ``503 SlowDown`` to the
    next ``budget`` PUT requests whose path contains ``match``, and passes all else on."""

    def __init__(self, upstream: str) -> None:
        import http.client
        import http.server
        import threading
        from urllib.parse import urlparse

        self.match, self.budget, self.refused = "", 0, 0
        target = urlparse(upstream)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if self.command == "PUT" and proxy.match in self.path and proxy.budget > 0:
                    proxy.budget -= 1
                    proxy.refused += 1
                    error = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown"
                             b"</Code><Message>Please reduce your request rate.</Message>"
                             b"</Error>")  # fmt: skip
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error)
                    return
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = target.netloc
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                self.send_response(response.status)
                for k, v in response.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                length = response.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture()
def refusing(s3, weights, monkeypatch):
    import s3fs

    proxy = _Refusing(os.environ["AWS_ENDPOINT_URL"])
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # the client's own retries off: ours counted
    s3fs.S3FileSystem.clear_instance_cache()
    yield proxy
    proxy.server.shutdown()
    s3fs.S3FileSystem.clear_instance_cache()


def test_throttling_at_commit_is_retried(refusing, weights, s3):
    from clip_video_encode.read import iter_samples

    refusing.match, refusing.budget = "00000.parquet", 7  # beyond the client's own 5 tries
    dest = "s3://videos-bucket/throttled"
    assert encode_to(dest, weights[0], "--allow-failures") == 0
    assert refusing.refused == 7
    assert len(list(iter_samples(dest))) == 1


def test_an_object_store_that_keeps_refusing_is_one_line(refusing, weights, s3, capsys):
    from clip_video_encode.read import shard_urls

    refusing.match, refusing.budget = "00000.parquet", 10_000
    dest = "s3://videos-bucket/refused"
    capsys.readouterr()
    assert encode_to(dest, weights[0], "--io-retries", "1") == 3
    err = capsys.readouterr().err
    assert "kept refusing writing" in err and "2 attempts" in err and "resumes" in err
    assert "Traceback" not in err
    names = [p.rsplit("/", 1)[-1] for p in s3.ls("videos-bucket/refused", refresh=True)]
    assert "00000.tar" not in names and "00000_stats.json" not in names  # no final names
    assert shard_urls(dest) == []
    refusing.budget = 0  # the store recovers: the same command finishes the job
    assert encode_to(dest, weights[0], "--io-retries", "1", "--allow-failures") == 0
    assert [u.rsplit("/", 1)[-1] for u in shard_urls(dest)] == ["00000.tar"]


def test_lease_on_an_object_store(s3):
    """No "create if absent" on S3: racing runs write, settle and read back; one goes on."""
    import time

    from test_lease import race

    from clip_video_encode.destination.lease import LEASE_NAME, DestinationBusy, Lease

    dest = "videos-bucket/leased"
    leases = [Lease(s3, dest) for _ in range(3)]
    results = race(leases)
    assert sorted(results) == ["refused", "refused", "won"], results
    winner = leases[results.index("won")]
    with pytest.raises(DestinationBusy, match="in use by another run"):
        Lease(s3, dest).acquire()  # live: refused
    s3.pipe(f"{dest}/{LEASE_NAME}", json.dumps({"run_id": winner.run_id, "host": "elsewhere",
            "pid": 1, "heartbeat": time.time() - 200, "lease_seconds": 120}).encode())  # fmt: skip
    with Lease(s3, dest) as late:  # stale: taken over, then given back
        assert json.loads(s3.cat(f"{dest}/{LEASE_NAME}"))["run_id"] == late.run_id
    assert not s3.exists(f"{dest}/{LEASE_NAME}")
