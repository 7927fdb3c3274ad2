"""What a run may write and remove: paths inside its destination, and only names it owns.

DESIGN.md section 7. Every path the writer, the run's bookkeeping, the card and the lease
write, rename or remove goes through :func:`inside`, which refuses anything that would
resolve outside ``--dest`` (``..``, a symbolic link leading out, a NUL byte). Which names in
``--dest`` are the run's own, so that it may remove them:

- its partial names (``NAME.tar.partial``, ``NAME.parquet.partial``, ...): only this tool
  writes those, and only for the time a commit takes;
- a shard whose commit marker (``NAME_stats.json``) parses as one and names that shard: its
  tar (or folder) and parquet;
- the names of the plan in the destination's ``run.json``: before ``run.json`` is first
  written (and before a ``--replan`` adds shards to it), every name the plan will write is
  checked free (:func:`check_free`); a name taken by anything this tool cannot prove it
  wrote stops the run with a message naming it, before anything is written. So a later run
  finding a planned name in use knows it is what an interrupted commit left.

Nothing else in ``--dest`` is touched: a user's folder ``train/`` next to ``train.tar``
stays, and an input lying where an output would go is refused up front
(:func:`refuse_inputs_in_the_way`).
"""

from __future__ import annotations

import json
import os
import posixpath

RUN_FILES = ("run.json", "README.md", "splits.csv")
LEASE_PREFIX = "_lease.json"


class OutsideDestination(ValueError):
    """A path the run was about to write or remove lies outside its destination."""


class InTheWay(ValueError):
    """A name the run must write is taken by something it cannot prove it wrote."""


def _is_local(fs) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return fs is None or isinstance(fs, LocalFileSystem)


def inside(dest: str, path: str, fs=None) -> str:
    """``path``, when it lies strictly inside ``dest``; raises :class:`OutsideDestination`
    otherwise. Paths are the filesystem's own (fsspec's stripped paths). On a local disk the
    real paths are compared too, so a symbolic link in ``dest`` that leads out of it is
    refused, as is writing through one."""
    if "\0" in path or "\0" in dest:
        raise OutsideDestination(f"{path!r}: a NUL byte in a path (refused)")
    root = dest.rstrip("/") or "/"
    if not path.startswith(root + "/") or any(
        part in ("", ".", "..") for part in path[len(root) + 1 :].rstrip("/").split("/")
    ):
        raise OutsideDestination(f"{path!r} is not inside the destination {root!r} (refused)")
    if _is_local(fs):
        real_root = os.path.realpath(root)
        real = os.path.realpath(path)
        if os.path.commonpath([real_root, real]) != real_root or real == real_root:
            raise OutsideDestination(
                f"{path!r} leads to {real!r}, outside the destination {root!r} (refused)"
            )
    elif posixpath.normpath(path) != path.rstrip("/"):
        raise OutsideDestination(f"{path!r} is not a plain path inside {root!r} (refused)")
    return path


def shard_files(name: str, output_format: str) -> tuple[str, str, str]:
    """A shard's final names in the destination: (data, parquet, marker); the data is
    ``NAME.tar``, or the folder ``NAME`` for ``--output-format files``."""
    data = name if output_format == "files" else f"{name}.tar"
    return data, f"{name}.parquet", f"{name}_stats.json"


def partial_names(name: str, output_format: str) -> tuple[str, ...]:
    """The names a shard's commit writes aside before renaming: this tool's own."""
    data, parquet, marker = shard_files(name, output_format)
    return f"{data}.partial", f"{parquet}.partial", f"{marker}.partial"


def run_names(shard_names, output_format: str) -> set[str]:
    """Every top-level name a run with these shards writes or removes in its destination
    (the lease's own temporary names start with :data:`LEASE_PREFIX`)."""
    names = {*RUN_FILES, "README.md.partial", LEASE_PREFIX}
    for name in shard_names:
        names.update(shard_files(name, output_format))
        names.update(partial_names(name, output_format))
    return names


def marker_names_shard(fs, dest: str, name: str) -> bool:
    """Whether ``NAME_stats.json`` is a commit marker of this tool for shard ``name`` (its
    sizes may no longer match: the shard is then not committed, but its files are ours)."""
    try:
        stats = json.loads(fs.cat_file(f"{dest}/{name}_stats.json"))
    except (OSError, ValueError):
        return False
    return isinstance(stats, dict) and stats.get("shard") == name and "count" in stats


def check_free(fs, dest: str, shard_names, output_format: str, listing: set[str],
               run_files: tuple[str, ...] = ()) -> None:  # fmt: skip
    """Refuse (:class:`InTheWay`) before anything is written when a final name of these
    shards, or one of ``run_files``, is taken in ``dest`` by anything but a shard of this
    tool (proved by its marker), or one of their partial names by anything at all.
    ``listing``: the names in ``dest``."""
    taken = [n for n in run_files if n in listing]
    for name in shard_names:
        present = [n for n in shard_files(name, output_format) if n in listing]
        if present and not marker_names_shard(fs, dest, name):
            taken.extend(present)
        # Partial names are this tool's only once its plan names the shard: before, what is
        # there is someone else's (a commit writes aside only after run.json).
        taken.extend(n for n in partial_names(name, output_format) if n in listing)
    if taken:
        shown = ", ".join(f"{dest}/{n}" for n in taken[:3])
        more = f" (and {len(taken) - 3} more)" if len(taken) > 3 else ""
        raise InTheWay(
            f"{shown}{more}: this run writes there, and nothing shows clip-video-encode wrote"
            " what is there now (no run.json of this run, no commit marker). It is left as it"
            " is: move it out of the way, or choose another --dest."
        )


def remove_shard(fs, dest: str, name: str, output_format: str,
                 present: set[str] | None = None) -> None:  # fmt: skip
    """Un-commit a shard of this run's plan and remove its files: the marker first, so a
    crash midway leaves it uncommitted; then its data, parquet and partial names. Only the
    names of ``output_format`` (a folder ``NAME/`` is never touched in webdataset output).
    ``present``: the names in ``dest``, when already listed."""
    data, parquet, marker = shard_files(name, output_format)
    for leaf in (marker, data, parquet, *partial_names(name, output_format)):
        path = inside(dest, f"{dest}/{leaf}", fs)
        if (leaf in present) if present is not None else fs.exists(path):
            fs.rm(path, recursive=True)


def refuse_inputs_in_the_way(dest: str, names: set[str], inputs, what: str) -> None:
    """Raise ValueError when an input (a path or URL in ``inputs``) lies at a name the run
    writes or removes in ``dest`` (``names``: top-level names, see :func:`run_names`), or
    inside one: the run would overwrite or delete its own input."""
    import fsspec

    dest_fs, dest_path = fsspec.core.url_to_fs(dest)
    local = _is_local(dest_fs)
    roots = _roots(dest_path, local)
    for url in inputs:
        path = _input_path(url, dest_fs, local)
        if path is None:
            continue
        for root in roots:
            if not path.startswith(root + "/"):
                continue
            top = path[len(root) + 1 :].split("/", 1)[0]
            if top in names or top.startswith(LEASE_PREFIX):
                raise ValueError(
                    f"{what} {url} lies where this run writes ({root}/{top}): the run would"
                    " overwrite or remove its own input. Choose another --dest, or move the"
                    " input out of it."
                )


def _roots(dest_path: str, local: bool) -> list[str]:
    if not local:
        return [dest_path.rstrip("/")]
    return sorted({os.path.abspath(dest_path), os.path.realpath(dest_path)})


def _input_path(url: str, dest_fs, local: bool) -> str | None:
    """``url`` as a path of the destination's filesystem, or None when it is elsewhere."""
    import fsspec

    url = str(url)
    protocol, _ = fsspec.core.split_protocol(url)
    if local:
        if protocol not in (None, "file", "local"):
            return None
        path = url.split("://", 1)[1] if protocol else url
        return os.path.realpath(path) if os.path.lexists(path) else os.path.abspath(path)
    if protocol is None or protocol not in _protocols(dest_fs):
        return None
    return posixpath.normpath(dest_fs._strip_protocol(url))


def _protocols(fs) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)
