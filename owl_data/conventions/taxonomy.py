"""One street taxonomy: every source's category names mapped to the unified names of the corpus.

The table is data, ``taxonomy.yaml`` beside this module (packaged with it), loaded once
(:func:`default_taxonomy`). Its base is the Cityscapes label table
(``cityscapesscripts.helpers.labels``): a Cityscapes label name is a unified name as it is, a
COCO or PASCAL VOC class takes the Cityscapes name of the same class (``stop sign`` ->
``traffic sign``, ``motorbike`` -> ``motorcycle``) or keeps its own when no street class is
its equivalent (``dog``), and a DriveLM ``Vehicle`` or ``Traffic element`` becomes the kind its
``Visual_description`` names first (``"Brown SUV."`` -> ``car``, ``"White truck."`` ->
``truck``, ``"Green light."`` -> ``traffic light``), else the generic ``vehicle`` /
``traffic element``. The vehicle kinds follow the Cityscapes class definitions
(cityscapes-dataset.com): car includes SUVs, jeeps and vans with a continuous body; truck
includes pickups and box trucks.

The build applies it in one place (:func:`owl_data.build.scene.process_scene`, before any
row or text is made), keeping the source's own name as ``target.source_category``::

    >>> tax = default_taxonomy()
    >>> tax.unify("drivelm", "Vehicle", "Black sedan car."), tax.unify("drivelm", "Vehicle", "")
    ('car', 'vehicle')
    >>> tax.unify("coco", "stop sign"), tax.unify("coco", "dog"), tax.unify("cityscapes", "rider")
    ('traffic sign', 'dog', 'rider')
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import yaml

__all__ = ["TAXONOMY_FILE", "Taxonomy", "TaxonomyError", "load_taxonomy", "default_taxonomy", "normalise"]

TAXONOMY_FILE = Path(__file__).with_name("taxonomy.yaml")
_UNLISTED = ("keep", "lower")


class TaxonomyError(ValueError):
    """A taxonomy table that is malformed (the message names the entry)."""


def normalise(name: str) -> str:
    """The lookup form of a category name: lower-cased, white space collapsed."""
    return " ".join(str(name).lower().split())


def _words(text: str) -> str:
    """A description as space-separated lower-case words (every non-letter a space), padded."""
    return " " + " ".join(re.sub(r"[^a-z]+", " ", str(text).lower()).split()) + " "


@dataclass(frozen=True)
class _ByKind:
    """A source name split by the kind its description names (``kinds``), else ``otherwise``."""

    kinds: tuple[tuple[str, str], ...]  # (phrase, unified), longest phrase first
    otherwise: str

    def pick(self, description: str) -> str:
        text = _words(description)
        best: tuple[int, int, str] | None = None  # (start, -len, unified)
        for phrase, unified in self.kinds:
            at = text.find(f" {phrase} ")
            if at >= 0 and (best is None or (at, -len(phrase)) < best[:2]):
                best = (at, -len(phrase), unified)
        return best[2] if best is not None else self.otherwise


@dataclass(frozen=True)
class _Vocabulary:
    unlisted: str
    names: Mapping[str, "str | _ByKind"]


@dataclass(frozen=True)
class Taxonomy:
    """The loaded table (:func:`load_taxonomy`).

    Attributes:
        sources: source name -> its vocabulary name, or None for a source that sets no category.
        vocabularies: vocabulary name -> its mapping.
        generic: the unified names that are not Cityscapes labels -> what each means.
        version: the first 16 hex digits of the sha256 of the table's bytes (part of the
            build's code versions, so an edited table rebuilds what it changes).
    """

    sources: Mapping[str, str | None]
    vocabularies: Mapping[str, _Vocabulary]
    generic: Mapping[str, str]
    version: str

    def listed(self, source: str, category: str) -> bool:
        """Whether ``category`` is named in the table of ``source``'s vocabulary (not a fallback)."""
        vocab = self.vocabularies.get(self.sources.get(source) or "")
        return vocab is not None and normalise(category) in vocab.names

    def unify(self, source: str, category: str, description: str = "") -> str:
        """The unified name of ``source``'s ``category``.

        Args:
            source: the source's registered name (``owl_data.sources.SOURCES``); a name the
                table does not list, or one listed with no vocabulary, keeps its categories.
            category: the source's own class name.
            description: the object's visual description (DriveLM ``Visual_description``),
                read only for a name that is split by kind.

        Returns:
            The unified name; ``category`` unchanged when it is empty or the source maps none.
        """
        vocab = self.vocabularies.get(self.sources.get(source) or "")
        if vocab is None or not str(category).strip():
            return category
        key = normalise(category)
        entry = vocab.names.get(key)
        if entry is None:
            return key if vocab.unlisted == "lower" else category
        return entry if isinstance(entry, str) else entry.pick(description)


def _load(data: Any, version: str) -> Taxonomy:
    """The Taxonomy of a parsed table; TaxonomyError naming the first malformed entry."""
    if not isinstance(data, dict):
        raise TaxonomyError("taxonomy: the table is not a mapping")
    kinds_tables: dict[str, tuple[tuple[str, str], ...]] = {}
    for tname, table in (data.get("kinds") or {}).items():
        if not isinstance(table, dict):
            raise TaxonomyError(f"taxonomy: kinds {tname!r} is not a mapping of name -> phrases")
        seen: dict[str, str] = {}
        for unified, phrases in table.items():
            if not isinstance(phrases, list) or not phrases:
                raise TaxonomyError(f"taxonomy: kinds {tname!r}: {unified!r} needs a list of phrases")
            for p in phrases:
                w = _words(p).strip()
                if not w or w in seen:
                    raise TaxonomyError(f"taxonomy: kinds {tname!r}: phrase {p!r} is empty or listed twice")
                seen[w] = str(unified)
        kinds_tables[str(tname)] = tuple(sorted(seen.items(), key=lambda kv: -len(kv[0])))
    vocabularies: dict[str, _Vocabulary] = {}
    for vname, v in (data.get("vocabularies") or {}).items():
        if not isinstance(v, dict) or v.get("unlisted") not in _UNLISTED:
            raise TaxonomyError(f"taxonomy: vocabulary {vname!r} needs unlisted: {' or '.join(_UNLISTED)}")
        names: dict[str, str | _ByKind] = {}
        for src, target in (v.get("names") or {}).items():
            key = normalise(src)
            if key in names:
                raise TaxonomyError(f"taxonomy: vocabulary {vname!r} lists {src!r} twice")
            if isinstance(target, str) and target.strip():
                names[key] = target
            elif isinstance(target, dict) and target.get("kinds") in kinds_tables \
                    and isinstance(target.get("otherwise"), str):
                names[key] = _ByKind(kinds_tables[target["kinds"]], target["otherwise"])
            else:
                raise TaxonomyError(f"taxonomy: vocabulary {vname!r}: {src!r} -> {target!r} is neither a name "
                                    "nor {kinds: <a kinds table>, otherwise: <name>}")
        vocabularies[str(vname)] = _Vocabulary(v["unlisted"], names)
    sources = data.get("sources") or {}
    for src, vname in sources.items():
        if vname is not None and vname not in vocabularies:
            raise TaxonomyError(f"taxonomy: source {src!r} names vocabulary {vname!r}, which is not defined")
    return Taxonomy(sources=dict(sources), vocabularies=vocabularies,
                    generic=dict(data.get("generic") or {}), version=version)


def load_taxonomy(path: Path | str = TAXONOMY_FILE) -> Taxonomy:
    """Read and check a taxonomy table (the packaged one by default).

    Raises:
        OSError: the file cannot be read.
        TaxonomyError: a malformed entry (an unknown kinds table or vocabulary, a name or a
            phrase listed twice, an ``unlisted`` other than keep/lower).
    """
    raw = Path(path).read_bytes()
    return _load(yaml.safe_load(raw), hashlib.sha256(raw).hexdigest()[:16])


@lru_cache(maxsize=1)
def default_taxonomy() -> Taxonomy:
    """The packaged table, loaded once per process."""
    return load_taxonomy()
