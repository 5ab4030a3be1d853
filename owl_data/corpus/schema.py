"""Versioned Arrow schemas of the Owl-VL corpus (DESIGN.md "Corpus layout").

This module is the single source of truth for the corpus tables: writers validate every
batch against these schemas and store :data:`SCHEMA_VERSION` in each Parquet file's
metadata (key ``owl.schema_version``, plus ``owl.table``). A change of any field is a new
version. The repository's top-level ``schemas/`` folder publishes them as JSON, one file per
version (:func:`schema_document`), written by ``python -m owl_data.corpus.schema schemas``.

Geometry fields are normalised to [0, 1] in the stored upright image's frame, x right,
y down; boxes are xyxy.
"""

from __future__ import annotations

import re

import pyarrow as pa

__all__ = [
    "SCHEMA_VERSION",
    "IMAGES",
    "IMAGE_REFS",
    "POINT_VQA",
    "VQA",
    "CAPTION",
    "GROUNDING",
    "REJECTS",
    "TASK_TABLES",
    "TASK_ORDER",
    "TABLES",
    "SchemaError",
    "check_version",
    "with_metadata",
    "IMAGE_ID",
    "is_image_id",
]

SCHEMA_VERSION = "1.1.0"
"""1.1.0: ``point_vqa.target.source_category`` (the source's own class name; ``category`` is the
unified one, :mod:`owl_data.conventions.taxonomy`). A reader refuses a corpus of another
major.minor version (:func:`check_version`)."""


class SchemaError(ValueError):
    """A table or file that does not match its schema."""


IMAGE_ID = re.compile(r"[0-9a-f]{64}")
"""An ``image_id``: the sha256 of the stored bytes, 64 lowercase hex digits (also a safe file name)."""


def is_image_id(value: object) -> bool:
    """True for a sha256 hex digest (:data:`IMAGE_ID`)."""
    return isinstance(value, str) and IMAGE_ID.fullmatch(value) is not None


_TURN = pa.struct([("role", pa.string()), ("content", pa.string())])
_BBOX = pa.list_(pa.float64())  # xyxy, exactly 4 values (checked by validation)

_COMMON = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("image_id", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("split", pa.string(), nullable=False),
    pa.field("conversations", pa.list_(_TURN), nullable=False),
]

IMAGES = pa.schema([
    pa.field("image_id", pa.string(), nullable=False),
    pa.field("bytes", pa.binary(), nullable=False),
    pa.field("format", pa.string(), nullable=False),
    pa.field("width", pa.int32(), nullable=False),
    pa.field("height", pa.int32(), nullable=False),
    pa.field("split", pa.string(), nullable=False),
])

IMAGE_REFS = pa.schema([
    pa.field("image_id", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("source_path", pa.string(), nullable=False),
    pa.field("group", pa.string(), nullable=False),
])

POINT_VQA = pa.schema(_COMMON + [
    pa.field("point", pa.struct([("x", pa.float64()), ("y", pa.float64())]), nullable=False),
    pa.field("point_origin", pa.string(), nullable=False),  # mask | box | annotated
    pa.field("kind", pa.string(), nullable=False),  # description | reasoning
    pa.field(
        "target",
        pa.struct([("category", pa.string()), ("source_category", pa.string()), ("instance", pa.string()),
                   ("bbox", _BBOX)]),
        nullable=False,
    ),
    pa.field("generator", pa.string(), nullable=False),
])

VQA = pa.schema(_COMMON + [pa.field("answers", pa.list_(pa.string()), nullable=False)])

CAPTION = pa.schema(_COMMON)

GROUNDING = pa.schema(_COMMON + [
    pa.field("expression", pa.string(), nullable=False),
    pa.field("bbox", _BBOX, nullable=False),
])

REJECTS = pa.schema([
    pa.field("source", pa.string(), nullable=False),
    pa.field("item", pa.string(), nullable=False),
    pa.field("stage", pa.string(), nullable=False),
    pa.field("reason", pa.string(), nullable=False),
    pa.field("detail", pa.string(), nullable=False),
])

TASK_TABLES: dict[str, pa.Schema] = {
    "point_vqa": POINT_VQA,
    "vqa": VQA,
    "caption": CAPTION,
    "grounding": GROUNDING,
}

# The tasks in the order of the paper's stage-1 ratio (5:1:2:2 = general VQA : captioning :
# grounding : point VQA): the default order of a mix's weights and of eval's tasks.
TASK_ORDER: tuple[str, ...] = ("vqa", "caption", "grounding", "point_vqa")

TABLES: dict[str, pa.Schema] = {
    "images": IMAGES,
    "image_refs": IMAGE_REFS,
    **TASK_TABLES,
    "rejects": REJECTS,
}


def check_version(version: object, where: str) -> None:
    """Refuse a corpus whose schema is not this one's major.minor version (patch may differ).

    Args:
        version: the ``schema_version`` a manifest (or a file's metadata) records.
        where: what holds it (a corpus folder), named in the message.

    Raises:
        SchemaError: one line naming both versions and saying "rebuild with this version".
    """
    mine = SCHEMA_VERSION.split(".")[:2]
    if not isinstance(version, str) or version.split(".")[:2] != mine:
        raise SchemaError(f"{where}: corpus schema {version!r}, this owl-data reads schema {SCHEMA_VERSION} "
                          f"(1.1.0 added target.source_category): rebuild with this version")


def with_metadata(table: str) -> pa.Schema:
    """The schema of ``table`` with the version metadata every file carries."""
    if table not in TABLES:
        raise SchemaError(f"unknown table {table!r}; tables: {', '.join(TABLES)}")
    return TABLES[table].with_metadata(
        {b"owl.schema_version": SCHEMA_VERSION.encode(), b"owl.table": table.encode()}
    )


def _field_doc(field: pa.Field) -> dict:
    return {"name": field.name, "type": str(field.type), "nullable": field.nullable}


def schema_document() -> dict:
    """The schemas of this version as plain JSON data: ``{"version", "tables": {table: [field…]}}``.

    Each field is ``{"name", "type" (Arrow's type string), "nullable"}``. This is what the
    repository's top-level ``schemas/`` folder publishes (one file per version, see
    :func:`schema_file_name`); a test checks that the two agree.
    """
    return {"format": "owl-corpus-schema/1", "version": SCHEMA_VERSION,
            "tables": {name: [_field_doc(f) for f in schema] for name, schema in TABLES.items()}}


def schema_file_name(version: str = SCHEMA_VERSION) -> str:
    """``owl-corpus-<version>.json``: the published file of one schema version."""
    return f"owl-corpus-{version}.json"


if __name__ == "__main__":  # pragma: no cover  (python -m owl_data.corpus.schema DIR: write the published file)
    import json
    import sys
    from pathlib import Path

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "schemas") / schema_file_name()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(schema_document(), indent=2) + "\n")
    print(out)
