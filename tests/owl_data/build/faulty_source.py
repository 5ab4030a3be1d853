"""A test-only source: the Cityscapes reader whose frames named by the spec fail in the worker.

Spec ``MODE@NAME@ROOT``: frames whose ``source_path`` contains ``NAME`` get the loader
:func:`explode` (``MODE``: ``raise`` a RuntimeError, ``value`` a ValueError, ``exit`` the
worker process with ``os._exit(3)``, ``none`` leaves every frame alone); the rest are read as
Cityscapes. Workers import this module by name (``tests.owl_data.build.faulty_source``), so
Ray's workers need the repository root on their ``PYTHONPATH``.
"""

from __future__ import annotations

import os
from typing import Iterator

from owl_data.records import DeferredScene, Record
from owl_data.sources import SourceOptions
from owl_data.sources import cityscapes

LOADER = "tests.owl_data.build.faulty_source:explode"


def read(spec: str, options: SourceOptions) -> Iterator[Record]:
    mode, name, root = spec.split("@", 2)
    for r in cityscapes.read(root, options):
        if isinstance(r, DeferredScene) and mode != "none" and name in r.item:
            yield DeferredScene(r.source, LOADER, (mode, r.loader, r.args), r.item)
        else:
            yield r


def explode(mode: str, loader: str, args: tuple) -> list:
    if mode == "exit":
        os._exit(3)
    if mode == "value":
        raise ValueError("injected fault")
    raise RuntimeError("injected fault")
