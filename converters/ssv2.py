"""Something-Something v2: ``something-something-v2-{train,validation,test}.json`` (lists of
``{"id", "label", "template", "placeholders"}``; the test list has ids only) and
``something-something-v2-labels.json`` (``{template without brackets: "index"}``).

One row per video: the label (the template filled with its objects) as caption, the
``template``, its ``placeholders`` and ``label_index`` (from the labels file, when given). The
videos are a download: ``--video-root`` finds ``<id>.webm``.
"""

from __future__ import annotations

import pyarrow as pa

from . import register
from .core import ConvertError, split_from_filename
from .text import read_json

TYPES = {"label_index": pa.int64(), "placeholders": pa.list_(pa.string())}


@register(
    "ssv2",
    "Something-Something v2 (needs --video-root)",
    "something-something-v2-{train,validation,test}.json [+ -labels.json]",
    TYPES,
)
def convert(paths, options, report):
    loaded = [(path, read_json(path, options.encoding)) for path in paths]
    labels: dict[str, int] = {}
    for path, data in loaded:
        if isinstance(data, dict):
            try:
                labels.update({str(k): int(v) for k, v in data.items()})
            except (TypeError, ValueError):
                raise ConvertError(path, 'a labels file maps "template": "index"') from None
    unknown = 0
    for path, data in loaded:
        if isinstance(data, dict):
            continue
        if not isinstance(data, list):
            raise ConvertError(path, 'expected a list of {"id", "label", "template", ...}')
        split = options.split or split_from_filename(path)
        for n, item in enumerate(data):
            if not isinstance(item, dict) or not str(item.get("id") or "").strip():
                raise ConvertError(path, f"entry {n}: no id")
            template = item.get("template")
            index = None
            if template is not None and labels:
                index = labels.get(template.replace("[", "").replace("]", ""))
                unknown += index is None
            video_id = str(item["id"]).strip()
            yield {
                "id": video_id,
                "location": None,
                "caption": str(item.get("label") or "").strip() or None,
                "start": None,
                "end": None,
                "split": split,
                "template": template,
                "placeholders": item.get("placeholders"),
                "label_index": index,
                "_video_file": video_id,
            }
    if unknown:
        report.note(f"{unknown} templates are not in the labels file: label_index left empty")
