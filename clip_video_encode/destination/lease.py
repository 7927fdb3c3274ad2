"""One run per destination: a lease file, ``DEST/_lease.json``, with a heartbeat.

Two runs writing into one destination would remove each other's shards in progress and
commit the same shard twice. A run takes the lease before it touches anything in the
destination and keeps it fresh while it runs; a second run finds it fresh and refuses.

The rule, the same on local disks and object stores (where no write is "create if absent"):

- a lease is *live* while its heartbeat (rewritten every ``seconds / 4``) is younger than
  ``seconds``; a lease left by a run killed without warning goes *stale* after that and is
  taken over. One whose process is gone from this very host is taken over at once.
- to take the lease a run writes its own, waits a moment and reads it back: when two runs
  write at once, the one whose lease is still there goes on and the other refuses. A local
  lease that does not exist yet is created by a hard link, which no other run can win too.
- a run that finds another run's lease in place of its own (it was stalled longer than
  ``seconds``) stops before it commits another shard. It reads the lease before every
  commit, not only at heartbeats: a run waking from a stall would otherwise commit once
  before its heartbeat thread noticed.

A file at ``_lease.json`` that is not a lease (neither JSON with a run id and a heartbeat,
nor the start of one) is nobody's lease to take over: the run refuses rather than overwrite
it. An empty one, or one cut short (what a power cut may leave), counts as stale.

Heartbeat times are compared with this machine's clock: machines that share a destination
need clocks that agree to well within ``seconds`` (NTP does).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid

from .owned import inside

LEASE_NAME = "_lease.json"


class DestinationBusy(Exception):
    """Another run holds the destination's lease."""


class LeaseLost(RuntimeError):
    """Another run took this run's lease (this run was stalled past the lease's lifetime)."""


class Lease:
    """The destination's lease, held by this run between ``__enter__`` and ``__exit__``."""

    def __init__(self, fs, dest: str, seconds: float = 120.0, settle: float | None = None,
                 flag: str = "--dest"):  # fmt: skip
        self.fs, self.dest, self.seconds = fs, dest, seconds
        self.flag = flag  # the option that names the destination, for the messages
        self.path = inside(dest, f"{dest}/{LEASE_NAME}", fs)
        self.local = _is_local(fs)
        # How long two writers racing for the lease wait before reading it back.
        self.settle = settle if settle is not None else (0.2 if self.local else 1.0)
        self.run_id = uuid.uuid4().hex
        self.started = time.time()
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Lease:
        self.acquire()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="lease")
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.release()

    def acquire(self) -> None:
        if self.local and self._create_exclusive():
            return  # no lease was there, and the link let no other run create one too
        held = self._read()
        if held is not None and held.get("foreign"):
            raise DestinationBusy(
                f"{self.path} is there and is not a lease of clip-video-encode (not JSON with a"
                " run id and a heartbeat): it is left as it is. Move it away, or choose another"
                f" {self.flag}."
            )
        if held is not None and not self._takeable(held):
            raise DestinationBusy(self._busy_message(held))
        self._write()
        time.sleep(self.settle)
        held = self._read()
        if held is None or held.get("run_id") != self.run_id:
            raise DestinationBusy(self._busy_message(held or {}))

    def check(self) -> None:
        """Raise :class:`LeaseLost` if another run has taken the lease (called before each
        commit). A store that cannot be read just now leaves the verdict to the heartbeat."""
        if not self.lost:
            with contextlib.suppress(Exception):
                self._notice_takeover(self._read())
        if self.lost:
            raise LeaseLost(self.lost)

    def release(self) -> None:
        with contextlib.suppress(Exception):
            held = self._read()
            if held is not None and held.get("run_id") == self.run_id:
                self.fs.rm(self.path)

    # -- the file ----------------------------------------------------------------------------

    def _content(self) -> bytes:
        now = time.time()
        return json.dumps({
            "run_id": self.run_id, "host": socket.gethostname(), "pid": os.getpid(),
            "started": self.started, "heartbeat": now, "lease_seconds": self.seconds,
        }).encode()  # fmt: skip

    def _create_exclusive(self) -> bool:
        """Create the lease, whole, only if there is none: a hard link fails if the name
        exists, and unlike an ``O_EXCL`` file it is never seen half-written."""
        tmp = f"{self.path}.{self.run_id}"
        with open(tmp, "wb") as f:
            f.write(self._content())
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            return False
        finally:
            os.remove(tmp)
        return True

    def _write(self) -> None:
        if self.local:  # whole or absent: written aside, renamed over
            tmp = f"{self.path}.{self.run_id}"
            with open(tmp, "wb") as f:
                f.write(self._content())
            os.replace(tmp, self.path)
        else:  # an object store's PUT replaces the object whole
            self.fs.pipe_file(self.path, self._content())

    def _read(self) -> dict | None:
        return _read_lease(self.fs, self.dest, self.path, self.local)

    def checker(self) -> LeaseCheck:
        """The check before a commit, for processes other than this one (Ray pipelines)."""
        return LeaseCheck(self.fs, self.dest, self.path, self.local, self.run_id, self.seconds)

    def _takeable(self, held: dict) -> bool:
        if held.get("run_id") == self.run_id:
            return True
        age = time.time() - float(held.get("heartbeat") or 0)
        if age > float(held.get("lease_seconds") or self.seconds):
            return True
        return held.get("host") == socket.gethostname() and not _alive(held.get("pid"))

    def _busy_message(self, held: dict) -> str:
        age = time.time() - float(held.get("heartbeat") or 0)
        lifetime = float(held.get("lease_seconds") or self.seconds)
        who = f"process {held.get('pid')} on {held.get('host')}" if held else "another run"
        return (
            f"{self.dest} is in use by another run ({who}, last heartbeat {age:.0f} s ago):"
            " two runs on one destination would overwrite each other's shards. Wait for it to"
            f" finish, or use another {self.flag}. A run that was killed is taken over after"
            f" {lifetime:.0f} s without a heartbeat (at once on the same host), or remove"
            f" {self.path} once you are sure it is gone."
        )

    def _notice_takeover(self, held: dict | None) -> bool:
        if held is None or held.get("run_id") in (None, self.run_id):
            return False
        self.lost = _lost_message(self.dest, self.seconds)
        return True

    def _beat(self) -> None:
        while not self._stop.wait(self.seconds / 4):
            try:
                if self._notice_takeover(self._read()):
                    return
                self._write()
            except Exception:
                continue  # a blip of the store: the next beat tries again, well within seconds


class LeaseCheck:
    """Raises :class:`LeaseLost` when another run holds the lease: what a process that
    commits shards for this run calls before each commit. Picklable; the lease's holder
    keeps the heartbeat."""

    def __init__(self, fs, dest: str, path: str, local: bool, run_id: str, seconds: float):
        self.fs, self.dest, self.path, self.local = fs, dest, path, local
        self.run_id, self.seconds = run_id, seconds

    def __call__(self) -> None:
        try:
            held = _read_lease(self.fs, self.dest, self.path, self.local)
        except Exception:  # a store that cannot be read just now: the holder's heartbeat decides
            return
        if held is not None and held.get("run_id") not in (None, self.run_id):
            raise LeaseLost(_lost_message(self.dest, self.seconds))


def _read_lease(fs, dest: str, path: str, local: bool) -> dict | None:
    """The lease there now; None if there is none. An empty one or one cut short (a torn
    write on a disk that lost power) counts as stale; one that is not a lease at all is
    ``{"foreign": True}``."""
    try:
        if local:
            with open(path, "rb") as f:
                data = f.read()
        else:
            fs.invalidate_cache(dest)
            data = fs.cat_file(path)
    except FileNotFoundError:
        return None
    if not data.strip():
        return {"heartbeat": 0}
    try:
        held = json.loads(data)
    except ValueError:
        torn = data.lstrip().startswith(b'{"run_id"')  # how every lease of ours begins
        return {"heartbeat": 0} if torn else {"foreign": True, "heartbeat": 0}
    if not isinstance(held, dict) or "run_id" not in held or "heartbeat" not in held:
        return {"foreign": True, "heartbeat": 0}
    return held


def _lost_message(dest: str, seconds: float) -> str:
    return (
        f"another run took the lease of {dest} (this run went {seconds:.0f} s without"
        " renewing it): stopped before committing another shard. The committed shards are"
        " kept."
    )


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    try:  # a killed process its parent has not reaped yet still has a pid: it is gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _is_local(fs) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)
