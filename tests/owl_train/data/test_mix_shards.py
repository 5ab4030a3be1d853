"""The trainer's corpus readers refuse a damaged shard as they open it (owl_data.corpus.read)."""

from __future__ import annotations

import re
import shutil
from fractions import Fraction

import pytest

from owl_data.corpus.read import CorpusChangedError, DamagedShardError
from owl_data.mix.io import MixConfig, write_mix
from owl_train.data.mix_dataset import MixDataset, MixIterableDataset
from owl_train.data.rows import FilteredMix, MixStream, corpus_images, corpus_rows
from tests.owl_data.corpus.shard_helpers import first_shard, flip_byte, hashed_tiny, strip_shards

CFG = MixConfig(ratio=(Fraction(1),) * 4, num_samples=40)


@pytest.fixture
def world(tmp_path):
    corpus = hashed_tiny(tmp_path / "c")
    write_mix(corpus, tmp_path / "m", CFG)
    return corpus, tmp_path / "m"


@pytest.mark.parametrize("folder", ["images", "grounding", "point_vqa"])
def test_mix_datasets_refuse_a_damaged_shard(world, folder):
    corpus, mix = world
    want = [r["id"] for r in MixIterableDataset(corpus, mix)]
    assert len(want) == 40
    rel = flip_byte(corpus, first_shard(corpus, folder))
    msg = re.escape(f"corpus {corpus}: shard {rel} is damaged (sha256 mismatch); rebuild the corpus")
    with pytest.raises(DamagedShardError, match=msg):
        list(MixIterableDataset(corpus, mix))
    ds = MixDataset(corpus, mix)
    with pytest.raises(DamagedShardError, match=msg):
        [ds[i] for i in range(len(ds))]
    if folder == "point_vqa":
        with pytest.raises(DamagedShardError, match=msg):
            FilteredMix(corpus, mix, keep=lambda t: [True] * t.num_rows)
        with pytest.raises(DamagedShardError, match=msg):
            corpus_rows(corpus, "point_vqa", "train")
    if folder == "images":
        with pytest.raises(DamagedShardError, match=msg):
            corpus_images(corpus, [want[0]])


def test_an_old_manifest_without_shards_reads_the_same_rows(world):
    corpus, mix = world
    want = [(r["id"], r["image"].tobytes()) for r in MixIterableDataset(corpus, mix)]
    strip_shards(corpus)
    assert [(r["id"], r["image"].tobytes()) for r in MixIterableDataset(corpus, mix)] == want
    assert [r["id"] for r in corpus_rows(corpus, "grounding", "train")] == [f"grounding-groundingsrc-{j}" for j in range(7)]


def test_a_corpus_rebuilt_under_a_dataset(world, tmp_path):
    corpus, mix = world
    ds = MixDataset(corpus, mix)
    other = hashed_tiny(tmp_path / "o", {"vqa": {"vqav2": 3, "gqa": 4}, "caption": 5, "grounding": 7, "point_vqa": 2})
    shutil.rmtree(corpus)
    shutil.copytree(other, corpus)
    with pytest.raises(CorpusChangedError, match=re.escape(f"corpus {corpus} changed while reading")):
        [ds[i] for i in range(len(ds))]
    with pytest.raises(CorpusChangedError, match="since the mix was made"):
        MixDataset(corpus, mix)


def test_an_error_in_a_dataloader_worker_is_still_one_line(world):
    corpus, mix = world
    rel = flip_byte(corpus, first_shard(corpus, "caption"))
    with pytest.raises(DamagedShardError) as exc:
        list(MixStream(corpus, mix, num_workers=1))
    assert str(exc.value) == f"corpus {corpus}: shard {rel} is damaged (sha256 mismatch); rebuild the corpus"
