"""Values made fit for strict JSON: what a table gives (NaN for a missing number, numpy
scalars, bytes) becomes what every JSON parser reads. Everything the project writes goes
through :func:`plain` and is serialised with ``allow_nan=False``, so a slip fails loudly
instead of writing ``NaN``, which strict parsers reject."""

from __future__ import annotations

import datetime
import decimal
import json
import math
from typing import Any

import numpy as np


def plain(value: Any) -> Any:
    """``value`` with NaN/Infinity as None, numpy scalars and arrays as Python values, bytes
    as text, dates and times as ISO 8601 text, durations as seconds, decimals as numbers,
    recursively through lists, tuples and dicts."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()  # a table's dates and times: ISO 8601 text
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return plain(float(value))
    return value


def dumps(value: Any, **kwargs) -> str:
    """Strict JSON text of ``value`` (after :func:`plain`)."""
    return json.dumps(plain(value), allow_nan=False, **kwargs)
