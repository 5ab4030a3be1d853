"""Mixes on disk (owl_data.mix.io) and the mix commands: writing, refusals, stats."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from owl_data.cli.app import app
from owl_data.fs import OutputError
from owl_data.mix.io import MixConfig, MixSizeError, parse_ratio, parse_within, write_mix
from owl_data.mix.sampler import MixSampler
from owl_data.mix.spec import MixSpec
from owl_data.mix.stats import mix_stats
from tests.helpers import one_line_error, snapshot

runner = CliRunner()


def test_cli_mix_and_stats(tiny_corpus, tmp_path):
    out = tmp_path / "mix"
    res = runner.invoke(app, ["mix", str(tiny_corpus), "--ratio", "5:1:2:2", "--within", "vqa=vqav2:3,gqa:1",
                              "--epochs", "2", "--seed", "4", "--out", str(out)])
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "mix.json").read_text())
    t = pq.read_table(out / "mix.parquet").to_pylist()
    assert meta["length"] == len(t) == 96  # caption (5 rows, share 1/10) binds: its 10th pick is at 95
    assert [r["position"] for r in t] == list(range(96))
    counts = {task: sum(r["task"] == task for r in t) for task in ("vqa", "caption", "grounding", "point_vqa")}
    assert counts == {"vqa": 48, "caption": 10, "grounding": 19, "point_vqa": 19}
    # every row of every leaf picked at least twice
    for task, src, n in (("vqa", "vqav2", 12), ("vqa", "gqa", 4), ("caption", "captionsrc", 5)):
        ids = [r["id"] for r in t if r["task"] == task and r["source"] == src]
        assert {i: ids.count(i) for i in set(ids)}.keys() == {f"{task}-{src}-{j}" for j in range(n)}
        assert min(ids.count(i) for i in set(ids)) >= 2
    # the written picks are the sampler's
    spec = MixSpec.from_dict(meta["spec"])
    assert spec.seed == 4 and spec.tasks[0].sources[1] == ("gqa", Fraction(1), 4)
    assert [(p.task, p.source or r["source"]) for p, r in zip(MixSampler(spec, length=96), t)] \
        == [(r["task"], r["source"]) for r in t]
    res = runner.invoke(app, ["mix-stats", str(out)])
    assert res.exit_code == 0, res.output
    assert "vqav2" in res.output and "0.8333" in res.output
    s = mix_stats(out)
    assert [(name, n) for name, n, *_ in s.tasks] == list(counts.items())
    assert all(dev <= 5 / 6 for *_, dev, _ in s.tasks)
    assert [(src, n) for task, src, n, dev in s.sources if task == "vqa"] == [("vqav2", 36), ("gqa", 12)]
    assert all(dev <= 0.5 for task, _, _, dev in s.sources if task == "vqa")


def test_cli_errors(tiny_corpus, tmp_path):
    out = str(tmp_path / "m")
    empty = tmp_path / "nocap"
    from tests.owl_data.mix.conftest import write_tiny_corpus  # noqa: PLC0415

    write_tiny_corpus(empty, sizes={"vqa": 3, "point_vqa": 2})
    res = runner.invoke(app, ["mix", str(empty), "--ratio", "5:1:2:2", "--out", out])
    assert res.exit_code == 2 and "task 'caption' has no rows" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["mix", str(tiny_corpus), "--ratio", "5:1", "--out", out])
    assert res.exit_code == 2 and "2 weight(s) for 4 task(s)" in res.output
    res = runner.invoke(app, ["mix", str(tiny_corpus), "--ratio", "5:x:2:2", "--out", out])
    assert res.exit_code == 2 and "not a finite number" in res.output
    res = runner.invoke(app, ["mix", str(tiny_corpus), "--ratio", "1:1:1:1", "--epochs", "2",
                              "--on-exhausted", "stop", "--out", out])
    assert res.exit_code == 2 and "--epochs needs --on-exhausted repeat" in res.output
    res = runner.invoke(app, ["mix", str(tiny_corpus), "--ratio", "1:1:1:1", "--within", "vqa=vqav2:1",
                              "--out", out])
    assert res.exit_code == 2 and "also has rows from gqa" in res.output
    res = runner.invoke(app, ["mix", str(tiny_corpus), "--ratio", "1:1:1:1", "--out", str(tiny_corpus / "m")])
    assert res.exit_code == 2 and "inside the corpus" in res.output
    res = runner.invoke(app, ["mix-stats", str(tmp_path)])
    assert res.exit_code == 2 and "not an Owl-VL mix" in res.output
    assert parse_within(["vqa=a:3,b:0.5"]) == {"vqa": {"a": Fraction(3), "b": Fraction(1, 2)}}












def test_mix_out_refusals_touch_nothing(tiny, tmp_path, monkeypatch):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "mix.json").write_text('{"my": "notes"}')
    a_file = tmp_path / "file"
    a_file.write_text("x")
    link = tmp_path / "link"
    link.symlink_to(mine, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    cfg = MixConfig(ratio=parse_ratio("1:1:1:1"), num_samples=10)
    for out, match in [(mine, "not an Owl-VL mix"), (Path("."), "name"), (tmp_path, "current directory"),
                       (a_file, "not a folder"), (link, "symbolic link"), (tiny / "m", "inside the corpus"),
                       (tmp_path, "current directory")]:
        with pytest.raises(OutputError, match=match):
            write_mix(tiny, out, cfg)
    assert snapshot(tmp_path) == before
    res = runner.invoke(app, ["mix", str(tiny), "-r", "1:1:1:1", "-n", "5", "--out", "."])
    one_line_error(res)


def test_mix_replaces_only_its_own_output(tiny, tmp_path):
    out = tmp_path / "m"
    cfg = MixConfig(ratio=parse_ratio("1:1:1:1"), num_samples=10)
    write_mix(tiny, out, cfg)
    write_mix(tiny, out, MixConfig(ratio=parse_ratio("1:1:1:1"), num_samples=20))  # an earlier mix: replaced
    assert pq.read_metadata(out / "mix.parquet").num_rows == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "m"]  # no staging folder left
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="notes.txt"):
        write_mix(tiny, out, cfg)
    assert (out / "notes.txt").read_text() == "mine"


def test_mix_stats_on_a_malformed_mix_json(tiny, tmp_path):
    out = tmp_path / "m"
    write_mix(tiny, out, MixConfig(ratio=parse_ratio("1:1:1:1"), num_samples=10))
    for text in ("[1, 2]", '{"format": "owl-mix/1"}', '{"format": "owl-mix/1", "spec": {"tasks": [{"name": 1}]}}',
                 "{not json"):
        (out / "mix.json").write_text(text)
        with pytest.raises(ValueError):
            mix_stats(out)
        one_line_error(runner.invoke(app, ["mix-stats", str(out)]))


def test_mix_larger_than_the_disk_is_refused(tiny, tmp_path, monkeypatch):
    import owl_data.mix.io as mix_io

    monkeypatch.setattr(mix_io, "_free_bytes", lambda path: 10_000)
    with pytest.raises(MixSizeError, match="lower `num_samples`"):
        write_mix(tiny, tmp_path / "m", MixConfig(ratio=parse_ratio("1:1:1:1"), num_samples=10 ** 12))
    with pytest.raises(MixSizeError, match="lower `epochs`"):
        write_mix(tiny, tmp_path / "m", MixConfig(ratio=parse_ratio("1:1:1:1"), epochs=10 ** 9))
    out = one_line_error(runner.invoke(app, ["mix", str(tiny), "-r", "1:1:1:1", "-n", str(10 ** 12),
                                              "--out", str(tmp_path / "m")]))
    assert "GiB" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]


def test_interrupted_mix_leaves_no_partial_file(tiny, tmp_path, monkeypatch):
    import owl_data.mix.io as mix_io

    out = tmp_path / "m"
    write_mix(tiny, out, MixConfig(ratio=parse_ratio("1:1:1:1"), num_samples=10))
    before = snapshot(out)
    calls = {"n": 0}
    real = mix_io.MixSampler.picks

    def picks(self, start, stop):
        calls["n"] += 1
        if calls["n"] > 1:  # the first call sizes the mix; the next is the write
            raise KeyboardInterrupt
        return real(self, start, stop)

    monkeypatch.setattr(mix_io.MixSampler, "picks", picks)
    with pytest.raises(KeyboardInterrupt):
        write_mix(tiny, out, MixConfig(ratio=parse_ratio("1:1:1:1"), num_samples=50))
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "m"]


def test_mix_refuses_a_corpus_changed_since_its_build(tiny_corpus, tmp_path):
    shard = tiny_corpus / "caption" / "train" / "part-00000.parquet"
    shard.write_bytes(shard.read_bytes() + b"\0")
    res = runner.invoke(app, ["mix", str(tiny_corpus), "--ratio", "5:1:2:2", "--out", str(tmp_path / "m2")])
    assert res.exit_code == 2 and "fingerprint" in res.output and "differs from the manifest" in res.output
    m = json.loads((tiny_corpus / "manifest.json").read_text())
    m["fingerprint"] = "0" * 64
    (tiny_corpus / "manifest.json").write_text(json.dumps(m))
    res = runner.invoke(app, ["mix", str(tiny_corpus), "--ratio", "5:1:2:2", "--out", str(tmp_path / "m3")])
    assert res.exit_code == 2 and "fingerprint" in res.output


def test_warn_repeats_names_the_leaf_whose_rows_repeat(tiny_corpus, tmp_path):
    """--epochs 2 over 5:1:2:2 makes 96 picks: vqa/gqa has 4 rows and 12 picks (3 each), caption
    5 rows and 10 picks (2 each), grounding 7 rows and 19 picks (3 each), point_vqa 9 and 19 (3)."""
    from owl_data.mix.stats import leaf_repeats

    args = ["mix", str(tiny_corpus), "--ratio", "5:1:2:2", "--within", "vqa=vqav2:3,gqa:1", "--epochs", "2"]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "a"), "--warn-repeats", "2"])
    assert res.exit_code == 0, res.output
    warned = [line for line in res.output.replace("\n ", " ").splitlines() if line.startswith("warning:")]
    assert len(warned) == 4, res.output  # vqav2 (12 rows, 36 picks), gqa, grounding, point_vqa: 3 each; caption 2
    assert any("vqa/gqa: its 4 rows are picked 12 times in 96 picks, each row up to 3 times (more than "
               "--warn-repeats 2)" in w for w in warned), warned
    assert not any(w.startswith("warning: caption") for w in warned)
    t = pq.read_table(tmp_path / "a" / "mix.parquet").to_pylist()
    spec = MixSpec.from_dict(json.loads((tmp_path / "a" / "mix.json").read_text())["spec"])
    for r in leaf_repeats(spec, len(t)):  # the counts are those of the written picks
        task, _, src = r.leaf.partition("/")
        ids = [p["id"] for p in t if p["task"] == task and (not src or p["source"] == src)]
        assert (len(set(ids)), len(ids), max(ids.count(i) for i in ids)) == (r.rows, r.picks, r.max_repeats)
    for n in ("3", "-1"):  # at the limit, or never: no warning
        res = runner.invoke(app, [*args, "--out", str(tmp_path / f"b{n}"), "--warn-repeats", n])
        assert res.exit_code == 0 and "warning:" not in res.output, res.output
