"""Which category a text names: the category lexicon of ``owl-train eval`` and ``infer --pick``.

The lexicon (``category_lexicon.yaml`` beside this file) lists each category's name, plural and
synonyms. A text *names* a category where one of those word forms occurs as whole words:

- case-insensitive; ``_`` reads as a space; the words of a multi-word form may be separated by
  any run of spaces or hyphens ("traffic light", "traffic-light");
- the longest form wins at the same position ("stop sign" over "sign", "traffic lights" over
  "traffic light"), and "carpet" names no car;
- a form followed directly by another form (nothing but spaces or hyphens between them) is a
  modifier of it, the later one the head: "an orange car" names a car, not the fruit; "a traffic
  light pole" names a pole.

:meth:`Lexicon.first_category` returns the category named first (earliest position). An answer
*names* a target's category (:meth:`Lexicon.names`) when the category it names first is the
target's, or a kind of it (``includes`` in the file: an answer "a sedan" names a DriveLM
"Vehicle").

Worked example (the shipped lexicon)::

    >>> lex = load_lexicon()
    >>> lex.first_category("The closest other object is an orange car; it is left of two trees.")
    'car'
    >>> lex.first_category("A carpet."), lex.first_category("Three pedestrians."), lex.resolve("Pedestrian")
    (None, 'person', 'person')
    >>> lex.names("a black sedan", "Vehicle"), lex.names("a tree beside a car", "car")
    (True, False)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

__all__ = ["Category", "Lexicon", "Mention", "load_lexicon", "normalize_text", "LEXICON_FILE"]

LEXICON_FILE = Path(__file__).with_name("category_lexicon.yaml")
_GAP = r"[\s\-]+"  # between the words of a multi-word form, and what makes a modifier


def normalize_text(text: str) -> str:
    """Lowercase, ``_`` and hyphens -> space, whitespace runs -> one space, stripped (a form's key)."""
    return " ".join(w for w in re.split(r"[\s\-]+", text.replace("_", " ").lower()) if w)


@dataclass(frozen=True)
class Category:
    """One lexicon entry. ``includes``: names of the categories that are kinds of this one."""

    name: str
    plural: str | None = None
    synonyms: tuple[str, ...] = ()
    includes: tuple[str, ...] = ()

    @property
    def forms(self) -> tuple[str, ...]:
        """Every normalised word form that names this category (name first)."""
        out: list[str] = []
        for f in (self.name, self.plural, *self.synonyms):
            if f is not None and normalize_text(f) and normalize_text(f) not in out:
                out.append(normalize_text(f))
        return tuple(out)


@dataclass(frozen=True)
class Mention:
    """A category named in a text: ``text[start:end]`` is a form of ``category``."""

    start: int
    end: int
    category: str


class Lexicon:
    """Word forms -> categories, and the earliest-match rule over a text.

    Raises:
        ValueError: a word form claimed by two categories, an ``includes`` naming no category, or
            two entries of one name.
    """

    def __init__(self, categories: Sequence[Category]) -> None:
        self.categories: tuple[Category, ...] = tuple(categories)
        self._form: dict[str, str] = {}
        names = [normalize_text(c.name) for c in self.categories]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"category lexicon: {dup} listed more than once")
        for c in self.categories:
            for f in c.forms:
                other = self._form.setdefault(f, normalize_text(c.name))
                if other != normalize_text(c.name):
                    raise ValueError(f"category lexicon: {f!r} is a form of both {other!r} and {c.name!r}")
        self._includes: dict[str, frozenset[str]] = {}
        for c in self.categories:
            bad = [k for k in c.includes if normalize_text(k) not in self._form.values()]
            if bad:
                raise ValueError(f"category lexicon: {c.name!r} includes {bad}, which are not categories")
            self._includes[normalize_text(c.name)] = frozenset(normalize_text(k) for k in c.includes)
        forms = sorted(self._form, key=lambda f: (-len(f), f))  # longest first: it wins at a position
        alts = "|".join(_GAP.join(re.escape(w) for w in f.split()) for f in forms)
        self._re = re.compile(rf"(?<!\w)(?:{alts})(?!\w)") if forms else None

    def __len__(self) -> int:
        return len(self.categories)

    def resolve(self, category: str) -> str | None:
        """The lexicon category a corpus category string is (by any of its forms), else None.

        ``resolve("Pedestrian") == "person"``, ``resolve("traffic_light") == "traffic light"``.
        """
        return self._form.get(normalize_text(category))

    def mentions(self, text: str) -> list[Mention]:
        """Every category named in ``text``, in order, modifiers dropped (see the module doc)."""
        if self._re is None:
            return []
        t = text.replace("_", " ").lower()
        found = list(self._re.finditer(t))
        out = []
        for m, nxt in zip(found, found[1:] + [None]):
            if nxt is not None and re.fullmatch(_GAP, t[m.end():nxt.start()]):
                continue  # directly followed by another form: a modifier ("orange car")
            out.append(Mention(m.start(), m.end(), self._form[normalize_text(m.group(0))]))
        return out

    def first_category(self, text: str) -> str | None:
        """The category ``text`` names first, or None."""
        found = self.mentions(text)
        return found[0].category if found else None

    def names(self, text: str, category: str) -> bool:
        """The category ``text`` names first is ``category`` (a corpus string) or a kind of it."""
        target = self.resolve(category)
        first = self.first_category(text)
        return target is not None and first is not None and (first == target or first in self._includes[target])

    def with_categories(self, categories: Iterable[str]) -> "Lexicon":
        """This lexicon plus an entry (name, name + "s") for each category it does not resolve.

        Empty strings are skipped. A new name that is a form of no category is added as is; the
        plural is added only when no category claims it already.
        """
        extra: list[Category] = []
        claimed = set(self._form)
        for c in sorted({normalize_text(c) for c in categories if normalize_text(c)}):
            if c in claimed:
                continue
            plural = c + "s" if c + "s" not in claimed else None
            extra.append(Category(c, plural))
            claimed.update({c} | ({plural} if plural else set()))
        return self if not extra else Lexicon(self.categories + tuple(extra))


def _category(entry: Any, where: str) -> Category:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ValueError(f"{where}: each category needs a string 'name'; got {str(entry)[:80]}")
    unknown = set(entry) - {"name", "plural", "synonyms", "includes"}
    if unknown:
        raise ValueError(f"{where}: category {entry['name']!r} has unknown keys {sorted(unknown)}")
    lists = {k: entry.get(k) or [] for k in ("synonyms", "includes")}
    for k, v in lists.items():
        if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
            raise ValueError(f"{where}: category {entry['name']!r}: {k} must be a list of strings")
    plural = entry.get("plural")
    if plural is not None and not isinstance(plural, str):
        raise ValueError(f"{where}: category {entry['name']!r}: plural must be a string")
    return Category(entry["name"], plural, tuple(lists["synonyms"]), tuple(lists["includes"]))


@lru_cache(maxsize=4)
def _load(path: str) -> Lexicon:
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict) or not isinstance(data.get("categories"), list):
        raise ValueError(f"{path}: expected a mapping with a 'categories' list")
    return Lexicon([_category(e, path) for e in data["categories"]])


def load_lexicon(path: str | Path | None = None) -> Lexicon:
    """The lexicon in ``path`` (default: the shipped ``category_lexicon.yaml``); cached per path.

    Raises:
        ValueError: a malformed file (see :class:`Lexicon`).
        OSError: an unreadable file.
    """
    return _load(str(Path(path) if path is not None else LEXICON_FILE))
