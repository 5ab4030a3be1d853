"""Executors (owl_data.build.executor): what travels to a worker, the local pool, and Ray.

The Ray tests share one local Ray per module (``ray.init(num_cpus=2)``, no dashboard, a
small object store, its own short temporary folder under /tmp: Ray's socket paths must stay
under 108 characters). Its workers import the test-only source
(:mod:`tests.owl_data.build.faulty_source`) through ``PYTHONPATH``.
"""

from __future__ import annotations

import glob
import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from owl_data.build import executor as ex_mod
from owl_data.build.config import BuildConfig
from owl_data.build.driver import SourceSpec, _records, run_build
from owl_data.records import DeferredScene, Reject
from owl_data.sources import SOURCES
from owl_data.sources.synthetic.scenes import write_default_scenes
from tests.conftest import need_shared_data
from tests.owl_data.build.test_resume import Killed

ROOT = Path(__file__).resolve().parents[3]
TARGET = "synthville_000000_000001"  # the frame the faulty source breaks


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    return write_default_scenes(tmp_path_factory.mktemp("scenes"), seed=0)


def _real_specs(d: Path) -> list[SourceSpec]:
    return [SourceSpec("cityscapes", str(d / "cityscapes")),
            SourceSpec("coco", f"{d / 'coco_instances'}:{d / 'coco_instances' / 'annotations.json'}"),
            SourceSpec("drivelm", str(d / "drivelm"))]


def _rows(out: Path, table: str) -> list[dict]:
    return sorted((r for f in sorted(glob.glob(str(out / table / "**" / "*.parquet"), recursive=True))
                   for r in pq.read_table(f).to_pylist()), key=lambda r: json.dumps(r, sort_keys=True, default=str))


# --- what is sent to a worker, the local pool ---------------------------------------------


@pytest.mark.realdata
def test_every_work_item_pickles_under_1_mb(scenes):
    specs = [SourceSpec("cityscapes", str(scenes), synthetic=True), *_real_specs(need_shared_data())]
    items = [r for r in _records(specs, BuildConfig()) if not isinstance(r, Reject)]
    assert sum(isinstance(r, DeferredScene) for r in items) == 5 + 1  # every Cityscapes frame deferred
    sizes = [len(pickle.dumps(r)) for r in items]
    assert len(items) > 10 and max(sizes) < 2**20
    assert max(len(pickle.dumps(r)) for r in items if isinstance(r, DeferredScene)) < 4096


def test_a_deferred_item_returns_its_scene_results_and_the_files_it_read(scenes):
    cfg = BuildConfig()
    item = next(r for r in _records([SourceSpec("cityscapes", str(scenes), synthetic=True)], cfg)
                if isinstance(r, DeferredScene))
    got = ex_mod.run_item(item, cfg)
    assert len(got.results) == 1 and got.results[0].rows["point_vqa"]
    read = [Path(p).name for p, _ in got.inputs]
    assert read == [f"{Path(item.item).name[:-len('_leftImg8bit.png')]}_gtFine_{k}.png" for k in ("instanceIds", "labelIds")] + \
        [Path(item.item).name]  # label maps decoded by the loader, then the image by process_scene
    assert got.results[0].image["image_id"] == got.inputs[-1][1]  # stored as found: its sha256 is the id


def test_local_pool_streams_the_same_corpus_and_times_its_start(tmp_path, scenes):
    spec = [SourceSpec("cityscapes", str(scenes), synthetic=True)]
    one = run_build(spec, tmp_path / "one", BuildConfig(chunk_scenes=2))
    two = run_build(spec, tmp_path / "two", BuildConfig(chunk_scenes=2, workers=2))
    assert one.manifest["fingerprint"] == two.manifest["fingerprint"]
    assert one.timings["startup_s"] == 0 and two.timings["startup_s"] > 0
    assert two.timings["executor"] == "local" and two.timings["workers"] == 2


def test_a_value_error_in_a_loader_rejects_its_frame_locally(tmp_path, scenes, monkeypatch):
    monkeypatch.setitem(SOURCES, "faulty", "tests.owl_data.build.faulty_source:read")
    m = run_build([SourceSpec("faulty", f"value@{TARGET}@{scenes}")], tmp_path / "c", BuildConfig()).manifest
    s = m["sources"]["faulty"]
    assert s["rejects"].get("processing_error") == 1 and s["items_read"] == s["items_kept"] + s["items_rejected"]


def test_executor_settings_do_not_enter_the_content():
    a, b = BuildConfig(), BuildConfig(executor="ray", ray_address="auto", workers=7)
    assert a.content_dict() == b.content_dict()
    with pytest.raises(ValueError, match="ray_address"):
        BuildConfig(ray_address="auto")
    with pytest.raises(ValueError, match="executor"):
        BuildConfig(executor="dask")


# --- Ray -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_local():
    if not os.environ.get("CI"):
        pytest.importorskip("ray", reason="Ray not installed (pip install '.[ray]'); CI runs these tests")
    import ray

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    temp = tempfile.mkdtemp(prefix="owlray-", dir="/tmp")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp, object_store_memory=100 * 2**20,
             log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}})
    yield ray
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


RAY = BuildConfig(executor="ray", workers=2, chunk_scenes=2)


@pytest.mark.ray
@pytest.mark.realdata
def test_ray_corpus_equals_the_local_one_on_the_real_samples(tmp_path, ray_local):
    specs = _real_specs(need_shared_data())
    local = run_build(specs, tmp_path / "local", BuildConfig()).manifest["fingerprint"]
    on_ray = run_build(specs, tmp_path / "ray", RAY)
    assert on_ray.manifest["fingerprint"] == local
    assert on_ray.timings["executor"] == "ray" and on_ray.timings["workers"] == 2


def _faulty_vs_clean(tmp_path: Path, scenes: Path, mode: str, monkeypatch) -> tuple[Path, dict, Path]:
    monkeypatch.setitem(SOURCES, "faulty", "tests.owl_data.build.faulty_source:read")
    clean = tmp_path / "clean"
    run_build([SourceSpec("faulty", f"none@{TARGET}@{scenes}")], clean, BuildConfig())
    out = tmp_path / "faulty"
    m = run_build([SourceSpec("faulty", f"{mode}@{TARGET}@{scenes}")], out, RAY).manifest
    return out, m, clean


def _check_rest_of_corpus(out: Path, clean: Path) -> list[dict]:
    """The faulty corpus is the clean one without the target frame's rows; its reject rows."""
    target_ids = {r["image_id"] for r in _rows(clean, "image_refs") if TARGET in r["source_path"]}
    assert len(target_ids) == 1
    for table in ("point_vqa", "grounding", "vqa", "caption", "image_refs"):
        assert _rows(out, table) == [r for r in _rows(clean, table) if r["image_id"] not in target_ids], table
    return [r for r in _rows(out, "rejects") if r["reason"] == "processing_error"]


@pytest.mark.ray
def test_ray_task_that_raises_every_time_is_a_reject_and_the_rest_is_built(tmp_path, scenes, ray_local,
                                                                           monkeypatch):
    out, m, clean = _faulty_vs_clean(tmp_path, scenes, "raise", monkeypatch)
    (rej,) = _check_rest_of_corpus(out, clean)
    assert TARGET in rej["item"] and rej["stage"] == "process"
    assert "RuntimeError: injected fault" in rej["detail"] and "after retries" in rej["detail"]
    s = m["sources"]["faulty"]
    assert s["items_read"] == s["items_kept"] + s["items_rejected"]


@pytest.mark.ray
def test_ray_worker_that_dies_every_time_is_a_reject_after_retries(tmp_path, scenes, ray_local, monkeypatch):
    out, m, clean = _faulty_vs_clean(tmp_path, scenes, "exit", monkeypatch)
    (rej,) = _check_rest_of_corpus(out, clean)
    assert TARGET in rej["item"] and "worker died" in rej["detail"]


@pytest.mark.ray
def test_ray_build_resumes_after_a_killed_driver(tmp_path, scenes, ray_local):
    spec = [SourceSpec("cityscapes", str(scenes), synthetic=True)]
    cfg = BuildConfig(executor="ray", workers=2, chunk_scenes=1)
    clean = run_build(spec, tmp_path / "clean", BuildConfig(chunk_scenes=1)).manifest["fingerprint"]
    out, done = tmp_path / "corpus", []

    def kill_after_two(stage: str, n: int) -> None:
        done.append(stage)
        if len(done) == 2:
            raise Killed("driver killed")

    with pytest.raises(Killed):
        run_build(spec, out, cfg, progress=kill_after_two)
    assert not out.exists() and len(list((tmp_path / ".corpus.partial" / "chunks").iterdir())) == 2
    stages = []
    resumed = run_build(spec, out, cfg, progress=lambda stage, n: stages.append(stage))
    assert resumed.manifest["fingerprint"] == clean
    assert stages.count("resumed") == 2 and stages.count("scenes") == 3


def test_local_worker_that_dies_every_time_is_a_reject_not_a_hang(tmp_path, scenes, monkeypatch):
    from tests.helpers import fails_after

    monkeypatch.setitem(SOURCES, "faulty", "tests.owl_data.build.faulty_source:read")
    clean = tmp_path / "clean"
    run_build([SourceSpec("faulty", f"none@{TARGET}@{scenes}")], clean, BuildConfig())
    out = tmp_path / "faulty"
    with fails_after(120, "a local build whose worker dies"):
        m = run_build([SourceSpec("faulty", f"exit@{TARGET}@{scenes}")], out, BuildConfig(workers=2)).manifest
    (rej,) = _check_rest_of_corpus(out, clean)
    assert TARGET in rej["item"] and f"{ex_mod.LOCAL_TRIES} tries" in rej["detail"]
    s = m["sources"]["faulty"]
    assert s["items_read"] == s["items_kept"] + s["items_rejected"]
