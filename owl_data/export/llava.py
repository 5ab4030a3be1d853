"""LLaVA instruction JSON export (and reading it back).

Record layout (LLaVA, haotian-liu/LLaVA ``docs/Finetune_Custom_Data.md``)::

    {"id": ROW_ID, "image": "images/<image_id>.<ext>",
     "conversations": [{"from": "human", "value": "<image>\\n..."}, {"from": "gpt", "value": "..."}],
     "owl": {task, source, split, image_id, the task's other fields}}

Roles map user -> ``human``, assistant -> ``gpt``, system -> ``system``. A turn that starts
with ``<image>`` gets the newline LLaVA puts after it (``<image>\\n``); reading back removes
exactly that newline. Points and boxes are text in the export's convention
(:mod:`owl_data.conventions.coords`), recorded in ``owl_export.json``. Extra keys such as ``owl``
are ignored by LLaVA's loader.
"""

from __future__ import annotations

from typing import Any

from owl_data.export.chat import Layout

__all__ = ["LLAVA", "export_llava", "read_llava_export"]

IMAGE = "<image>"
_TO = {"user": "human", "assistant": "gpt", "system": "system"}
_FROM = {v: k for k, v in _TO.items()}


def _to_record(rid: str, image: str, turns: list[dict[str, str]], owl: dict[str, Any]) -> dict[str, Any]:
    conv = []
    for t in turns:
        value = t["content"]
        if value.startswith(IMAGE):
            value = IMAGE + "\n" + value[len(IMAGE):]
        conv.append({"from": _TO[t["role"]], "value": value})
    return {"id": rid, "image": image, "conversations": conv, "owl": owl}


def _from_record(rec: dict[str, Any]) -> tuple[str, list[str], list[dict[str, str]]]:
    turns = []
    for t in rec["conversations"]:
        if t["from"] not in _FROM:
            raise ValueError(f"unknown speaker {t['from']!r}")
        value = t["value"]
        if value.startswith(IMAGE + "\n"):
            value = IMAGE + value[len(IMAGE) + 1:]
        turns.append({"role": _FROM[t["from"]], "content": value})
    image = rec.get("image")
    paths = image if isinstance(image, list) else [image] if image else []
    return str(rec["id"]), paths, turns


LLAVA = Layout("llava", _to_record, _from_record)


export_llava = LLAVA.export  # (corpus, out, coords="qwen") -> ExportReport: chat.Layout.export
read_llava_export = LLAVA.read  # (folder) -> ReadBack: chat.Layout.read
