"""Where the per-scene work runs: in this process, a local process pool, or Ray tasks.

The driver (:mod:`owl_data.build.driver`) hands work items -- a :class:`~owl_data.records.Scene`
or a :class:`~owl_data.records.DeferredScene` -- to an executor and takes the results back
in submission order; what a worker returns is a :class:`WorkResult` (the scenes' results,
the loader's Rejects and the files read with their sha256). Every executor runs the same
function, :func:`run_item`, so the corpus is the same whichever runs it.

- :class:`LocalExecutor`: ``workers == 1`` runs each item in this process when submitted;
  more workers share one process pool (``forkserver`` where the platform has it, the
  package modules preloaded) started once per build; a worker that dies is replaced and
  the items it may have held are run again (an item that kills its worker every time is
  rejected). The driver keeps a bounded window of
  items in flight (:func:`in_flight_limit`) across chunk boundaries, so workers do not wait
  for a chunk to be written before they start the next one.
- :class:`RayExecutor`: one Ray task per item (``max_retries=3`` for a dead worker process,
  ``retry_exceptions=True`` for an exception); an item that still fails after its retries
  becomes ``processing_error`` rejects of its items (:func:`failed_item`), never a failed
  build. It joins the cluster at ``cfg.ray_address`` (``auto``, ``ray://host:10001``), joins
  a Ray already initialised in this process, or starts a local one with ``cfg.workers``
  CPUs, no dashboard and its own temporary folder (removed on close).

Each executor records its start-up time (``startup_s``: pool or cluster start, with the
workers' imports), which the build reports apart from the work.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Union

from owl_data.build.config import BuildConfig
from owl_data.build.scene import SceneResult, process_scene
from owl_data.errors import FieldError, exc_text
from owl_data.ingest.files import recording_reads
from owl_data.records import DeferredScene, Reject, Scene, expand_deferred

__all__ = ["WorkItem", "WorkResult", "SCENE_ERRORS", "guarded_process_scene", "run_item", "failed_item",
           "Executor", "LocalExecutor", "RayExecutor", "make_executor", "in_flight_limit"]

WorkItem = Union[Scene, DeferredScene]
"""What the driver sends to a worker: a Scene, or a DeferredScene the worker expands."""

# What processing one scene can raise on input no check foresaw (numpy/Pillow/pycocotools
# on odd data, a scene too big for memory). Bugs of other kinds (KeyError, AttributeError,
# SchemaError raised by the writer) still stop a local build.
SCENE_ERRORS = (ValueError, TypeError, OverflowError, RecursionError, OSError, MemoryError)


@dataclass
class WorkResult:
    """What one work item produced (pickled back from a worker).

    Attributes:
        results: one :class:`~owl_data.build.scene.SceneResult` per Scene, in order.
        rejects: the Rejects a deferred item's loader returned (the source's own), in order.
        inputs: ``(path, digest)`` of every file the item's processing read, in read order
            (digest: hex sha256 or a marker, :mod:`owl_data.ingest.files`).
    """

    results: list[SceneResult] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    inputs: list[tuple[str, str]] = field(default_factory=list)


def _detail(exc: BaseException) -> str:
    return exc_text(exc, limit=300)


def guarded_process_scene(scene: Scene, cfg: BuildConfig) -> SceneResult:
    """:func:`~owl_data.build.scene.process_scene`, with the last line of defence of the driver.

    Every specific fault has its own reject reason; an exception of :data:`SCENE_ERRORS`
    that still escapes turns that scene's items into rejects (stage ``process``, reason
    ``processing_error``, detail the exception's type and message) instead of killing the
    build.
    """
    try:
        return process_scene(scene, cfg)
    except SCENE_ERRORS as exc:
        return SceneResult.rejected_whole(scene, "process", "processing_error", _detail(exc))


def failed_item(item: WorkItem, detail: str) -> WorkResult:
    """Every item of ``item`` rejected (stage ``process``, ``processing_error``, ``detail``): a
    Scene's items (:func:`~owl_data.build.scene.scene_items`), a DeferredScene's ``item``."""
    if isinstance(item, Scene):
        return WorkResult(results=[SceneResult.rejected_whole(item, "process", "processing_error", detail)])
    return WorkResult(rejects=[Reject(item.source, item.item, "process", "processing_error", detail)])


def run_item(item: WorkItem, cfg: BuildConfig) -> WorkResult:
    """Process one work item: expand a DeferredScene (its loader reads and decodes its files),
    then every Scene through :func:`guarded_process_scene`, noting the files read.

    A loader that raises one of :data:`SCENE_ERRORS` rejects the deferred item (:func:`failed_item`).
    """
    with recording_reads() as log:
        if isinstance(item, DeferredScene):
            try:
                records = expand_deferred(item)
            except SCENE_ERRORS as exc:
                out = failed_item(item, _detail(exc))
                out.inputs = list(log)
                return out
        else:
            records = [item]
        results = [guarded_process_scene(r, cfg) for r in records if isinstance(r, Scene)]
        rejects = [r for r in records if isinstance(r, Reject)]
    return WorkResult(results, rejects, list(log))


def in_flight_limit(workers: int) -> int:
    """Items submitted and not yet taken back, at most: 4 per worker (at least 2)."""
    return max(2, 4 * workers)


class Executor:
    """Runs :func:`run_item` on work items; results are taken back in submission order.

    Attributes:
        startup_s: seconds spent starting the workers (0 for in-process work).
        workers: how many items run at once.
    """

    startup_s: float = 0.0
    workers: int = 1

    def submit(self, item: WorkItem) -> Any:
        """Start ``item``; returns a handle for :meth:`result`."""
        raise NotImplementedError

    def result(self, handle: Any) -> WorkResult:
        """Wait for a submitted item's :class:`WorkResult`."""
        raise NotImplementedError

    def ready(self, handle: Any) -> bool:
        """Whether :meth:`result` would return at once."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop the workers (idempotent)."""


# --- local ---------------------------------------------------------------------------------

_CFG: BuildConfig | None = None


def _init_worker(cfg: BuildConfig) -> None:
    global _CFG
    _CFG = cfg


def _work(item: WorkItem) -> WorkResult:
    assert _CFG is not None
    return run_item(item, _CFG)


def _ready(_: int) -> int:
    return os.getpid()


LOCAL_TRIES = 4
"""How many times a local item whose worker process dies is run (alone) before it is rejected."""


class LocalExecutor(Executor):
    """In this process (``cfg.workers == 1``) or a pool of ``cfg.workers`` processes started once.

    A worker process that dies (a crash in native code, the OOM killer) breaks the pool: it is
    started again, and every item that was in flight is run again, each alone, so the one that
    kills its worker is found; after :data:`LOCAL_TRIES` deaths it is a ``processing_error``
    reject (:func:`failed_item`), never a hang or a failed build.
    """

    def __init__(self, cfg: BuildConfig) -> None:
        self.cfg, self.workers, self._pool = cfg, cfg.workers, None
        if cfg.workers > 1:
            t0 = time.perf_counter()
            self._pool = self._start()
            self.startup_s = time.perf_counter() - t0

    def _start(self) -> ProcessPoolExecutor:
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if "forkserver" in methods:
            ctx.set_forkserver_preload(["owl_data.build.executor", "owl_data.generators"])
        pool = ProcessPoolExecutor(self.cfg.workers, mp_context=ctx, initializer=_init_worker, initargs=(self.cfg,))
        list(pool.map(_ready, range(self.cfg.workers)))  # the workers are up
        return pool

    def submit(self, item: WorkItem) -> Any:
        if self._pool is None:
            return run_item(item, self.cfg)
        return item, self._pool, self._pool.submit(_work, item)

    def ready(self, handle: Any) -> bool:
        return isinstance(handle, WorkResult) or handle[2].done()

    def result(self, handle: Any) -> WorkResult:
        if isinstance(handle, WorkResult):
            return handle
        item, pool, future = handle
        for _ in range(LOCAL_TRIES):
            try:
                return future.result()
            except BrokenProcessPool:
                if self._pool is pool:  # the first item to see this break restarts the pool
                    pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = self._start()
                pool = self._pool
                future = pool.submit(_work, item)  # run again by itself: the driver waits for it
        return failed_item(item, f"worker died on every try ({LOCAL_TRIES} tries)")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


# --- Ray -----------------------------------------------------------------------------------


def _ray_work(item: WorkItem, cfg: BuildConfig) -> WorkResult:
    return run_item(item, cfg)


class RayExecutor(Executor):
    """One Ray task per work item (see the module docstring)."""

    def __init__(self, cfg: BuildConfig) -> None:
        import ray

        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        t0 = time.perf_counter()
        self._ray, self._owns, self._temp = ray, False, None
        if not ray.is_initialized():
            if cfg.ray_address:
                ray.init(address=cfg.ray_address)  # local-only settings are refused for a cluster
            else:  # a short path: Ray's socket paths must stay under 108 characters
                self._temp = tempfile.mkdtemp(prefix="owlray-", dir="/tmp")
                ray.init(num_cpus=cfg.workers, include_dashboard=False, _temp_dir=self._temp,
                         log_to_driver=False)
            self._owns = True
        self.workers = int(ray.cluster_resources().get("CPU", cfg.workers))
        self._cfg = ray.put(cfg)
        self._task: Callable[..., Any] = ray.remote(max_retries=3, retry_exceptions=True)(_ray_work)
        ray.get([ray.remote(_ready).remote(i) for i in range(self.workers)])  # the workers are up
        self.startup_s = time.perf_counter() - t0

    def submit(self, item: WorkItem) -> Any:
        return item, self._task.remote(item, self._cfg)

    def ready(self, handle: Any) -> bool:
        done, _ = self._ray.wait([handle[1]], timeout=0)
        return bool(done)

    def result(self, handle: Any) -> WorkResult:
        from ray import exceptions as rx

        item, ref = handle
        try:
            return self._ray.get(ref)
        except rx.RayTaskError as exc:  # raised on every try
            cause = getattr(exc, "cause", None) or exc
            return failed_item(item, f"failed after retries: {_detail(cause)}")
        except (rx.WorkerCrashedError, rx.OutOfMemoryError) as exc:  # the worker died on every try
            return failed_item(item, f"worker died on every try: {type(exc).__name__}")

    def close(self) -> None:
        if self._owns:
            self._ray.shutdown()
            self._owns = False
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)
            self._temp = None


def make_executor(cfg: BuildConfig) -> Executor:
    """The executor ``cfg.executor`` names (``local`` or ``ray``).

    Raises:
        FieldError: (``executor``) ``ray`` asked for but not installed (``pip install '.[ray]'``).
    """
    if cfg.executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise FieldError("executor", "executor 'ray' needs Ray: pip install '.[ray]' (or pip install 'ray[data]')") from None
        return RayExecutor(cfg)
    return LocalExecutor(cfg)
