"""Shared reader of single-image chat files (LLaVA instruction JSON, ShareGPT layouts).

Entries (one per conversation, an *item*) are read from a JSON list or a JSONL file:

- LLaVA (haotian-liu/LLaVA, ``docs/Data.md``): ``{id, image, conversations: [{from:
  human|gpt|system, value}]}``; ``<image>`` in a human turn marks the image.
- ShareGPT as LLaMA-Factory reads it (``data/README.md``): ``{messages: [{role:
  user|assistant|system, content}], images: [paths]}``, or ``conversations``/``from``/
  ``value``; ``content`` may be a list of parts ``[{type: text|image_url|image, value |
  text | image_url}]`` (an image part stands where its ``<image>`` goes).

Turns keep their text; roles map to ``system``/``user``/``assistant``. A conversation with
no image is rejected ``no_image``, with more than one ``multi_image`` (until multi-image
rows are supported); one without a user and an assistant turn, with an unknown role or
ending on a user turn ``malformed_conversation``.
"""

from __future__ import annotations

from typing import Any, Iterator

from owl_data.records import Record, Reject, TextRow
from owl_data.sources import SourceError
from owl_data.sources._common import (
    STAGE, file_or_folder, image_ref, load_json, load_jsonl, option_path, parse_spec, scene_or_rejects, spec_frame,
)

__all__ = ["read_chats", "parse_conversation", "OPTIONS"]

ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
         "bot": "assistant", "system": "system"}
OPTIONS = {
    "images": "folder image paths are relative to (default: the file's folder)",
    "task": "vqa (default) or caption: the table the conversations go to",
    "split": "split for every row (default: by image group)",
}
_IMAGE_PART = ("image_url", "image")


def _part_image(part: dict) -> Any:
    for key in ("value", "image_url", "image", "url"):
        v = part.get(key)
        if isinstance(v, dict):
            v = v.get("url")
        if isinstance(v, str) and v:
            return v
    return None


def parse_conversation(entry: dict) -> tuple[list[tuple[str, str]], list[str]] | tuple[str, str]:
    """``(turns, images)`` of one entry, or ``(reason, detail)`` when it cannot be used.

    ``images`` lists the entry's image paths: ``image``/``images`` fields first, then the
    image parts of the contents in order.
    """
    msgs = entry.get("messages", entry.get("conversations"))
    if not isinstance(msgs, list) or not msgs:
        return "malformed_conversation", "no messages/conversations list"
    images: list[str] = []
    field = entry.get("images", entry.get("image"))
    if isinstance(field, str):
        images.append(field)
    elif isinstance(field, list):
        if not all(isinstance(p, str) for p in field):
            return "malformed_conversation", "images must be paths"
        images.extend(field)
    elif field is not None:
        return "malformed_conversation", f"image field of type {type(field).__name__}"
    turns: list[tuple[str, str]] = []
    for m in msgs:
        if not isinstance(m, dict):
            return "malformed_conversation", "a message is not an object"
        role = ROLES.get(str(m.get("role", m.get("from", ""))).lower())
        content = m.get("content", m.get("value"))
        if role is None:
            return "malformed_conversation", f"unknown role {m.get('role', m.get('from'))!r}"
        if isinstance(content, list):
            text = []
            for part in content:
                if not isinstance(part, dict):
                    return "malformed_conversation", "a content part is not an object"
                if part.get("type") in _IMAGE_PART:
                    path = _part_image(part)
                    if path is None:
                        return "malformed_conversation", "image part without a path"
                    images.append(path)
                    text.append("<image>")
                elif part.get("type") == "text":
                    v = part.get("value", part.get("text"))
                    if not isinstance(v, str):
                        return "malformed_conversation", "text part without text"
                    text.append(v)
                else:
                    return "malformed_conversation", f"content part of type {part.get('type')!r}"
            content = "".join(text)
        if not isinstance(content, str):
            return "malformed_conversation", "content is not text"
        turns.append((role, content))
    roles = [r for r, _ in turns]
    lead = next((i for i, r in enumerate(roles) if r != "system"), len(roles))
    body = roles[lead:]
    if "system" in body or not body or body[0] != "user" or "assistant" not in body:
        return "malformed_conversation", "needs system turns first, then a user turn and an assistant turn"
    if body[-1] != "assistant":
        return "malformed_conversation", "ends with an unanswered user turn"
    if any("<image>" in c for r, c in turns if r != "user"):
        return "malformed_conversation", "<image> outside a user turn"
    n_marks = sum(c.count("<image>") for r, c in turns if r == "user")
    if not images:
        return "no_image", "the conversation names no image"
    if len(images) > 1 or n_marks > 1:
        return "multi_image", f"{max(len(images), n_marks)} images (one per row is supported)"
    return turns, images


def read_chats(kind: str, spec: str, name: str, suffixes: tuple[str, ...]) -> Iterator[Record]:
    """Read every chat file of ``spec`` (``FILE`` or ``DIR`` with ``*<suffix>`` files at its top).

    Items: conversations, keyed ``<file>:<index>`` (``file`` relative to ``DIR``, index from
    0 in the list or among the JSONL's non-blank lines). One Scene per conversation.

    Raises:
        SourceError: missing path, no file, an unreadable JSON file, a bad option.
    """
    path, opts = parse_spec(kind, spec, OPTIONS)
    task = opts.get("task", "vqa")
    if task not in ("vqa", "caption"):
        raise SourceError(f"{kind}: task={task!r}: use vqa or caption (grounding and point_vqa need geometry)")
    root, files = file_or_folder(
        kind, path, lambda d: (p for p in d.iterdir() if p.is_file() and p.name.endswith(suffixes)),
        f"{'/'.join('*' + s for s in suffixes)} file")
    images = option_path(root, opts["images"]) if "images" in opts else None
    if images is not None and not images.is_dir():
        raise SourceError(f"{kind}: images folder {images} does not exist")
    for f in files:
        rel_file = f.relative_to(root).as_posix()
        if f.name.endswith(".jsonl"):
            entries = [(v, problem) for _, v, problem in load_jsonl(f, kind)]
        else:
            doc = load_json(f, kind)
            if not isinstance(doc, list):
                raise SourceError(f"{kind}: {f} is not a JSON list of conversations")
            entries = [(v, "") for v in doc]
        for index, (entry, problem) in enumerate(entries):
            item = f"{rel_file}:{index}"
            if problem or not isinstance(entry, dict):
                yield Reject(name, item, STAGE, "malformed_conversation", problem or "not an object")
                continue
            parsed = parse_conversation(entry)
            if isinstance(parsed[0], str):
                yield Reject(name, item, STAGE, *parsed)
                continue
            turns, paths = parsed
            base = images if images is not None else f.parent
            ref = image_ref(name, images or root, paths[0], base=base, split=opts.get("split"),
                            frame=spec_frame(opts))
            yield from scene_or_rejects(name, ref, [TextRow(task=task, item=item, turns=turns)])
