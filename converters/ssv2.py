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
from .core import ConvertError, split_from_filename, text_of, where
from .text import read_json_doc

TYPES = {"label_index": pa.int64(), "placeholders": pa.list_(pa.string())}


@register(
    "ssv2",
    "Something-Something v2 (needs --video-root)",
    "something-something-v2-{train,validation,test}.json [+ -labels.json]",
    TYPES,
)
def convert(paths, options, report):
    loaded = [(path, read_json_doc(path, options.encoding, depth=1)) for path in paths]
    labels: dict[str, int] = {}
    for path, doc in loaded:
        data = doc.value
        if isinstance(data, dict):
            for template, index in data.items():
                try:
                    labels[str(template)] = number = int(index)
                except (TypeError, ValueError, OverflowError):
                    number = -1
                if isinstance(index, bool | float) or not 0 <= number < 2**63:
                    raise ConvertError(path, f'a labels file maps "template": "index", not'
                                       f" {template!r}: {index!r}", doc.line(template))  # fmt: skip
    unknown = 0
    for path, doc in loaded:
        data = doc.value
        if isinstance(data, dict):
            continue
        if not isinstance(data, list):
            raise ConvertError(path, 'expected a list of {"id", "label", "template", ...}')
        split = options.split or split_from_filename(path)
        for n, item in enumerate(data):
            video_id = text_of(item.get("id")) if isinstance(item, dict) else None
            if not video_id:
                raise ConvertError(path, f"entry {n}: no id", doc.line(n))
            template = text_of(item.get("template"))
            index = None
            if template is not None and labels:
                index = labels.get(template.replace("[", "").replace("]", ""))
                unknown += index is None
            placeholders = item.get("placeholders")
            if isinstance(placeholders, list):
                placeholders = [str(p) for p in placeholders]
            elif placeholders is not None:
                placeholders = [str(placeholders)]
            yield {
                "id": video_id,
                "location": None,
                "caption": text_of(item.get("label")),
                "start": None,
                "end": None,
                "split": split,
                "template": template,
                "placeholders": placeholders,
                "label_index": index,
                "_video_file": video_id,
                "_where": where(path, doc.line(n)),
            }
    if unknown:
        report.note(f"{unknown} templates are not in the labels file: label_index left empty")
