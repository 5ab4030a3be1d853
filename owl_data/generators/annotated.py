"""Descriptions and grounding expressions from a source's own object attributes.

For sources that describe their objects in words (DriveLM key objects carry
``Category``, ``Status`` and ``Visual_description``), the description row is written from
those attributes, not from pixels: nothing is stated that the annotation does not say.
"""

from __future__ import annotations

from owl_data.generators import GeneratedQA
from owl_data.ingest.geometry import ResolvedInstance

__all__ = ["GENERATOR", "phrase", "describe_annotated", "DESCRIPTION_QUESTION"]

GENERATOR = "annotated-1.0"
DESCRIPTION_QUESTION = "Describe the object at the point."


def phrase(visual_description: str) -> str:
    """A short noun phrase from a visual description: ``"Brown SUV."`` -> ``"brown SUV"``.

    The trailing period is dropped and only the first letter is lower-cased (acronyms
    such as SUV keep their case).
    """
    s = " ".join(str(visual_description).split()).rstrip(" .")
    if len(s) > 1 and not s[:2].isupper():
        s = s[0].lower() + s[1:]
    return s


def describe_annotated(target: ResolvedInstance, *, with_question: bool = True,
                       without_question: bool = True) -> list[GeneratedQA]:
    """Description rows for a target from its category, status and visual description.

    Returns up to two rows: with ``DESCRIPTION_QUESTION`` and with no question (stage 2).
    """
    attrs = target.source.attributes
    category = str(target.category).strip() or "object"
    visual = phrase(attrs.get("visual_description", "") or "")
    status = str(attrs.get("status", "") or "").strip().rstrip(".")
    parts = [f"This is a {category.lower()}"]
    if visual:
        parts[0] += f": {_article(visual)} {visual}"
    text = parts[0] + "."
    if status and status.lower() not in ("none", "null"):
        text += f" Its status is {status[0].lower() + status[1:]}."
    out = []
    if with_question:
        out.append(GeneratedQA("description", DESCRIPTION_QUESTION, text, f"{GENERATOR}/description"))
    if without_question:
        out.append(GeneratedQA("description", None, text, f"{GENERATOR}/description"))
    return out


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"
