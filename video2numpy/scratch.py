"""Scratch folders that a later run can tell are dead, and removes.

A run killed without warning (``kill -9``, the out-of-memory killer, a lost node) cannot
remove its scratch folders (downloads, tar members): they stayed in the temporary folder
forever. So each folder's name says whose it is: a hash of the host name, the boot, the
owner's PID namespace, pid and start time (``/proc/PID/stat``, in clock ticks since boot)::

    clip-video-encode-h3f2a1c-b9c1d2e3f-n4026531836-p4242-t1234567-<random>

:func:`make_scratch` first removes the folders of its prefix whose owner is provably gone:
same host and PID namespace, and either another boot, or no process with that pid, or one
that started at another time (the pid was reused). A folder of another host (a shared
temporary folder) or PID namespace (a container), a live owner, or a name of another form
(a folder from before this scheme, or not ours) is left alone. Without ``/proc`` (macOS)
the start time is unknown: only a pid that no longer exists proves the owner gone.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import tempfile

_NAME = re.compile(r"^h([0-9a-f]{6})-b([0-9a-f]{8}|unknown)-n(\d+)-p(\d+)-t(\d+)-")
_swept: set[tuple[str, str]] = set()  # (folder, prefix): swept once per process


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip().replace("-", "")[:8]
    except OSError:
        return "unknown"


def _host() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]


def start_time(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (``/proc/PID/stat`` field
    22); None if there is no such process, or no ``/proc``. A zombie counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == "Z":
        return None
    return int(fields[19])


def _pid_namespace() -> int:
    """This process's PID namespace (0 where unknown): a container that shares the
    temporary folder and the host name sees other pids, so only owners of its own
    namespace can be proved gone."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def owner_tag(pid: int | None = None) -> str:
    """This process's (or ``pid``'s, in this PID namespace) part of a scratch folder's
    name."""
    pid = os.getpid() if pid is None else pid
    return f"h{_host()}-b{_boot_id()}-n{_pid_namespace()}-p{pid}-t{start_time(pid) or 0}-"


def make_scratch(prefix: str, folder: str | None = None) -> str:
    """A new scratch folder ``PREFIX<owner>-<random>`` in ``folder`` (the temporary folder),
    after removing the dead ones of the same prefix there (once per process)."""
    folder = folder or tempfile.gettempdir()
    if (folder, prefix) not in _swept:
        _swept.add((folder, prefix))
        sweep(prefix, folder)
    return tempfile.mkdtemp(prefix=f"{prefix}{owner_tag()}", dir=folder)


def sweep(prefix: str, folder: str | None = None) -> list[str]:
    """Remove the scratch folders of ``prefix`` in ``folder`` whose owner is provably gone;
    returns their paths."""
    folder = folder or tempfile.gettempdir()
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    removed = []
    for name in names:
        if name.startswith(prefix) and _dead(name[len(prefix) :]):
            path = os.path.join(folder, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


def _dead(tag: str) -> bool:
    match = _NAME.match(tag)
    if match is None:
        return False  # not a name of this scheme: whose it is cannot be told
    host, boot, namespace = match.group(1), match.group(2), int(match.group(3))
    pid, started = int(match.group(4)), int(match.group(5))
    if host != _host():
        return False  # another machine's: its processes cannot be seen from here
    now_boot = _boot_id()
    if boot != "unknown" and now_boot != "unknown" and boot != now_boot:
        return True  # made before this machine last started
    if namespace != _pid_namespace():
        return False  # another PID namespace's (a container): its pids are not ours to see
    if os.path.isdir("/proc/self"):
        now = start_time(pid)
        return now is None or (started != 0 and now != started)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # someone else's live process
    return False
