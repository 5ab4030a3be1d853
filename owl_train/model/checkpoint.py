"""Load and save Qwen2-VL checkpoints in Hugging Face layout through a declarative name table.

A directory holds ``config.json`` and the weights, either ``model.safetensors`` or shards
``model-0000k-of-0000n.safetensors`` listed by ``model.safetensors.index.json``. Every key of
the files is mapped by :data:`WEIGHT_TABLE` or dropped by :data:`DROPPED`; any other key is an
error (:class:`CheckpointError`), as is a weight of ours that nothing fills. Keys in the
transformers >= 4.52 in-memory layout (``model.language_model.*``, ``model.visual.*``) are read
too (:data:`PREFIX_ALIASES`); we write the original Qwen2-VL layout, which every transformers
version loads. Our own weights (:data:`~owl_train.model.model.EXTRA_WEIGHTS`: the point
encoder ``point_encoder.*`` and the focus sampler ``point_focus.*``) live in
``owl_extra.safetensors``, under our names; without that file they keep their init (zero output:
the model then behaves as plain Qwen2-VL plus the point's rotary placement).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from owl_train.model.config import OwlVLConfig
from owl_train.model.model import EXTRA_WEIGHTS, OwlVL

__all__ = ["WEIGHT_TABLE", "DROPPED", "PREFIX_ALIASES", "EXTRA_FILE", "CheckpointError", "read_safetensors",
           "load_pretrained", "save_pretrained", "hf_to_ours", "ours_to_hf"]

EXTRA_FILE = "owl_extra.safetensors"
INDEX_FILE = "model.safetensors.index.json"

# Hugging Face Qwen2-VL key -> our key; "{i}" is a layer or block number.
WEIGHT_TABLE: dict[str, str] = {
    "model.embed_tokens.weight": "decoder.embed_tokens.weight",
    "model.norm.weight": "decoder.norm.weight",
    "lm_head.weight": "lm_head.weight",
    "model.layers.{i}.input_layernorm.weight": "decoder.layers.{i}.attn_norm.weight",
    "model.layers.{i}.post_attention_layernorm.weight": "decoder.layers.{i}.mlp_norm.weight",
    **{f"model.layers.{{i}}.self_attn.{p}_proj.{t}": f"decoder.layers.{{i}}.attn.{p}_proj.{t}"
       for p in "qkv" for t in ("weight", "bias")},
    "model.layers.{i}.self_attn.o_proj.weight": "decoder.layers.{i}.attn.o_proj.weight",
    **{f"model.layers.{{i}}.mlp.{p}_proj.weight": f"decoder.layers.{{i}}.mlp.{p}_proj.weight"
       for p in ("gate", "up", "down")},
    "visual.patch_embed.proj.weight": "visual.patch_embed",
    **{f"visual.blocks.{{i}}.{hf}.{t}": f"visual.blocks.{{i}}.{ours}.{t}"
       for hf, ours in (("norm1", "norm1"), ("norm2", "norm2"), ("attn.qkv", "attn.qkv"),
                        ("attn.proj", "attn.proj"), ("mlp.fc1", "fc1"), ("mlp.fc2", "fc2"))
       for t in ("weight", "bias")},
    **{f"visual.merger.{hf}.{t}": f"visual.merger.{ours}.{t}"
       for hf, ours in (("ln_q", "norm"), ("mlp.0", "fc1"), ("mlp.2", "fc2")) for t in ("weight", "bias")},
}
# Keys some checkpoints carry that we recompute (rotary inverse frequencies): read and dropped.
DROPPED: tuple[str, ...] = (
    "model.rotary_emb.inv_freq",
    "model.layers.{i}.self_attn.rotary_emb.inv_freq",
    "visual.rotary_pos_emb.inv_freq",
)
# Newer in-memory layout -> original layout, applied to a key before the table.
PREFIX_ALIASES: tuple[tuple[str, str], ...] = (("model.language_model.", "model."), ("model.visual.", "visual."))


class CheckpointError(ValueError):
    """A checkpoint key that nothing maps, a weight that nothing fills, a shape mismatch, or a training
    checkpoint file that is damaged or not weights-only."""


def damaged(path: Path, exc: BaseException, what: str = "weights file") -> CheckpointError:
    """The one-line error for a file that could not be read: the file, the reader's first line."""
    first = ([ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__])[0][:200]
    return CheckpointError(f"{what} {path} is damaged ({type(exc).__name__}: {first}); copy or write it again")


def read_safetensors(path: Path, what: str = "weights file") -> dict[str, torch.Tensor]:
    """Every tensor of the safetensors file ``path``.

    Raises:
        CheckpointError: the file is missing, truncated, empty or its header is damaged.
    """
    if not Path(path).is_file():
        raise CheckpointError(f"{what} {path} is missing")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as sf:
            return {k: sf.get_tensor(k) for k in sf.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise damaged(Path(path), exc, what) from None


def _regex(template: str) -> re.Pattern:
    return re.compile("^" + re.escape(template).replace(r"\{i\}", r"(\d+)") + "$")


_FORWARD = [(_regex(h), o) for h, o in WEIGHT_TABLE.items()]
_BACKWARD = [(_regex(o), h) for h, o in WEIGHT_TABLE.items()]
_DROPPED = [_regex(d) for d in DROPPED]


def _apply(rules: list[tuple[re.Pattern, str]], key: str) -> str | None:
    for pat, target in rules:
        m = pat.match(key)
        if m:
            return target.replace("{i}", m.group(1)) if m.groups() else target
    return None


def hf_to_ours(key: str) -> str | None:
    """Our name for a Hugging Face key, or None when the key is explicitly dropped.

    Raises CheckpointError for a key that is neither mapped nor dropped."""
    for old, new in PREFIX_ALIASES:
        if key.startswith(old):
            key = new + key[len(old):]
            break
    ours = _apply(_FORWARD, key)
    if ours is not None:
        return ours
    if any(p.match(key) for p in _DROPPED):
        return None
    raise CheckpointError(f"checkpoint key {key!r} is neither mapped nor dropped (see WEIGHT_TABLE)")


def ours_to_hf(key: str) -> str:
    hf = _apply(_BACKWARD, key)
    if hf is None:
        raise CheckpointError(f"our weight {key!r} has no Hugging Face name (see WEIGHT_TABLE)")
    return hf


def _weight_files(path: Path) -> list[Path]:
    if (path / INDEX_FILE).exists():
        index = json.loads((path / INDEX_FILE).read_text())
        return [path / f for f in sorted(set(index["weight_map"].values()))]
    if (path / "model.safetensors").exists():
        return [path / "model.safetensors"]
    raise FileNotFoundError(f"{path} has neither model.safetensors nor {INDEX_FILE}")


def load_pretrained(path: str | Path, dtype: torch.dtype = torch.float32,
                    device: str | torch.device = "cpu") -> OwlVL:
    """Build an :class:`OwlVL` from a Hugging Face Qwen2-VL directory (ours or transformers')."""
    path = Path(path)
    config = OwlVLConfig.from_pretrained(path)
    model = OwlVL(config)
    own = model.state_dict()
    state: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for f in _weight_files(path):
        try:
            with safe_open(str(f), framework="pt", device="cpu") as sf:
                for key in sf.keys():
                    try:
                        ours = hf_to_ours(key)
                    except CheckpointError:
                        unknown.append(key)
                        continue
                    if ours is None or (ours == "lm_head.weight" and config.tie_word_embeddings):
                        continue  # dropped; a tied head is the embedding
                    state[ours] = sf.get_tensor(key)
        except (SafetensorError, OSError) as exc:
            raise damaged(f, exc) from None
    if unknown:
        raise CheckpointError(f"{len(unknown)} checkpoint keys are neither mapped nor dropped: {unknown[:8]}")
    if (path / EXTRA_FILE).exists():
        for key, v in read_safetensors(path / EXTRA_FILE).items():
            if not key.startswith(EXTRA_WEIGHTS) or key not in own:
                raise CheckpointError(f"{EXTRA_FILE} holds unknown key {key!r}")
            state[key] = v
    missing = [k for k in own if k not in state and not k.startswith(EXTRA_WEIGHTS)]
    if missing:
        raise CheckpointError(f"{len(missing)} weights are missing from {path}: {missing[:8]}")
    for k, v in state.items():
        if k not in own:
            raise CheckpointError(f"checkpoint weight {k!r} does not exist in this configuration")
        if not v.is_floating_point():
            raise CheckpointError(f"{k}: checkpoint dtype {str(v.dtype).removeprefix('torch.')} is not a float "
                                  f"type (a damaged header in {path}?)")
        if v.shape != own[k].shape:
            raise CheckpointError(f"{k}: checkpoint shape {tuple(v.shape)} != model shape {tuple(own[k].shape)}")
    model.load_state_dict(state, strict=False)
    return model.to(device=device, dtype=dtype)


def save_pretrained(model: OwlVL, path: str | Path, max_shard_bytes: int | None = None) -> Path:
    """Write ``config.json``, weights (sharded above ``max_shard_bytes``) and ``owl_extra.safetensors``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    hf: dict[str, torch.Tensor] = {}
    extra: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        v = v.detach().to("cpu").contiguous()
        if k.startswith(EXTRA_WEIGHTS):
            extra[k] = v
        else:
            hf[ours_to_hf(k)] = v
    dtype = next(iter(hf.values())).dtype
    cfg = model.config.to_hf_dict()
    cfg["dtype"] = str(dtype).removeprefix("torch.")
    (path / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    for stale in [*path.glob("model*.safetensors"), path / INDEX_FILE, path / EXTRA_FILE]:
        stale.unlink(missing_ok=True)
    meta = {"format": "pt"}
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for k in sorted(hf):
        n = hf[k].numel() * hf[k].element_size()
        if max_shard_bytes and shards[-1] and size + n > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][k] = hf[k]
        size += n
    if len(shards) == 1:
        save_file(shards[0], str(path / "model.safetensors"), metadata=meta)
    else:
        weight_map = {}
        for i, shard in enumerate(shards, 1):
            name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
            save_file(shard, str(path / name), metadata=meta)
            weight_map.update({k: name for k in shard})
        total = sum(v.numel() * v.element_size() for v in hf.values())
        (path / INDEX_FILE).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map},
                                                  indent=2) + "\n")
    if extra:
        save_file(extra, str(path / EXTRA_FILE), metadata=meta)
    return path
