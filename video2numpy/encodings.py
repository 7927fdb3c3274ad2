"""Text encodings: the check every ``--encoding`` gets, light enough for a console script's
top level (its decode workers import it again)."""

from __future__ import annotations

import argparse
import codecs


def check_encoding(encoding: str | None, flag: str = "--encoding") -> None:
    """A text encoding Python knows (None: UTF-8), else a ValueError that names the flag:
    an unknown one would otherwise surface as a LookupError deep in a reader. Codecs that are
    not text encodings (rot13, base64, hex, zlib: str to str or bytes to bytes) are refused
    too: ``open`` refuses them, and a reader given one failed with a TypeError traceback."""
    if encoding is None:
        return
    try:
        known = codecs.lookup(encoding)
    except LookupError:
        known = None
    # CodecInfo's _is_text_encoding is what open() and bytes.decode() check (False for rot13 ...)
    if known is None or not getattr(known, "_is_text_encoding", True):
        raise ValueError(
            f"{flag} {encoding!r} is not a text encoding Python knows (e.g. utf-8, cp1252,"
            " latin-1, utf-16)"
        ) from None


def encoding_option(value: str) -> str:
    """The ``type`` of every ``--encoding`` option: an unknown encoding is a usage error."""
    try:
        check_encoding(value, "")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).strip()) from None
    return value
