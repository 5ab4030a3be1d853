"""ShareGPT multimodal export, the LLaMA-Factory "messages" + "images" layout (and reading it back).

Record layout (LLaMA-Factory ``data/README.md``, sharegpt format with OpenAI-style tags)::

    {"id": ROW_ID, "messages": [{"role": "user", "content": "<image>..."},
                                {"role": "assistant", "content": "..."}],
     "images": ["images/<image_id>.<ext>"], "owl": {...}}

``<image>`` marks the image in the content, as in the corpus; roles are the corpus's.
``dataset_info.json`` names every file for LLaMA-Factory (formatting ``sharegpt``, columns
``messages`` and ``images``, role/content tags). Points and boxes are text in the export's
convention, recorded in ``owl_export.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from owl_data.export.chat import Layout

__all__ = ["SHAREGPT", "export_sharegpt", "read_sharegpt_export"]

_ROLES = ("user", "assistant", "system")


def _to_record(rid: str, image: str, turns: list[dict[str, str]], owl: dict[str, Any]) -> dict[str, Any]:
    return {"id": rid, "messages": turns, "images": [image], "owl": owl}


def _from_record(rec: dict[str, Any]) -> tuple[str, list[str], list[dict[str, str]]]:
    turns = []
    for m in rec["messages"]:
        if m["role"] not in _ROLES:
            raise ValueError(f"unknown role {m['role']!r}")
        if not isinstance(m["content"], str):
            raise ValueError("content parts are not written by owl-data exports")
        turns.append({"role": m["role"], "content": m["content"]})
    return str(rec["id"]), list(rec.get("images") or []), turns


def _dataset_info(folder: Path, files: dict[str, dict[str, Any]]) -> None:
    tags = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
            "system_tag": "system"}
    info = {
        f"owl_{Path(name).stem}": {"file_name": name, "formatting": "sharegpt",
                                   "columns": {"messages": "messages", "images": "images"}, "tags": tags}
        for name in files
    }
    (folder / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n")


SHAREGPT = Layout("sharegpt", _to_record, _from_record, _dataset_info)


export_sharegpt = SHAREGPT.export  # (corpus, out, coords="qwen") -> ExportReport: chat.Layout.export
read_sharegpt_export = SHAREGPT.read  # (folder) -> ReadBack: chat.Layout.read
