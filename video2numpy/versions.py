"""The versions of installed packages that a run file records (what made these bytes)."""

from __future__ import annotations

from importlib import metadata


def package_versions(*names: str) -> dict[str, str]:
    """``{name: version}`` of those of ``names`` that are installed."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out
