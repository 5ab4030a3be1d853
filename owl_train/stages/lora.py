"""LoRA on the decoder's linear layers through PEFT, kept on our own module (no wrapper class).

:func:`apply_lora` injects PEFT ``LoraLayer`` s in place (``peft.inject_adapter_in_model``), so
the model is still an :class:`~owl_train.model.OwlVL` with the same ``forward``. On disk, beside
the base weights: ``adapter_model.safetensors`` (``...q_proj.lora_A.weight`` etc., our module
names, PEFT's key form without the adapter name) and ``adapter_config.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch
from safetensors.torch import save_file
from torch import nn

from owl_train.model.checkpoint import read_safetensors

__all__ = ["ADAPTER_FILE", "ADAPTER_CONFIG", "apply_lora", "has_lora", "lora_state", "base_state",
           "merge_lora", "save_adapter", "load_adapter"]

ADAPTER_FILE = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
_NAME = "default"


def apply_lora(model: nn.Module, r: int, alpha: int, dropout: float, targets: Sequence[str]) -> nn.Module:
    """Inject LoRA (rank ``r``, scale ``alpha / r``) into the decoder's ``targets`` linears.

    Only ``decoder.layers.*`` modules are targeted (the ViT and merger have other names, but the
    regex keeps it explicit). Every parameter's ``requires_grad`` is left to the caller except
    the new LoRA ones, which are trainable.
    """
    from peft import LoraConfig, inject_adapter_in_model

    pattern = r"decoder\.layers\.\d+\.(attn|mlp)\.(" + "|".join(targets) + ")"
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=pattern, bias="none")
    before = {n: p.requires_grad for n, p in model.named_parameters()}
    inject_adapter_in_model(cfg, model, adapter_name=_NAME)
    for n, p in model.named_parameters():
        p.requires_grad_("lora_" in n or before.get(n.replace(".base_layer", ""), False))
    model._owl_lora = {"r": r, "lora_alpha": alpha, "lora_dropout": dropout, "target_modules": list(targets)}
    return model


def has_lora(model: nn.Module) -> bool:
    return any("lora_" in n for n, _ in model.named_parameters())


def _strip(key: str) -> str:
    return key.replace(f".{_NAME}.", ".").replace(f".{_NAME}", "")


def lora_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA weights, PEFT's key form (``...q_proj.lora_A.weight``)."""
    return {_strip(k): v for k, v in model.state_dict().items() if "lora_" in k}


def base_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights under the base names (LoRA left out, not merged)."""
    return {k.replace(".base_layer.", "."): v for k, v in model.state_dict().items() if "lora_" not in k}


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA layer into its base linear (W + B A * alpha / r) and remove it."""
    from peft.tuners.lora import LoraLayer

    for name, mod in list(model.named_modules()):
        if isinstance(mod, LoraLayer):
            mod.merge(safe_merge=True)
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, mod.get_base_layer())
    if hasattr(model, "_owl_lora"):
        del model._owl_lora
    if hasattr(model, "peft_config"):
        del model.peft_config
    return model


def save_adapter(model: nn.Module, path: str | Path) -> None:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in lora_state(model).items()}, str(path / ADAPTER_FILE),
              metadata={"format": "pt"})
    cfg: dict[str, Any] = {"peft_type": "LORA", "bias": "none", "module_names": "owl_train", **model._owl_lora}
    (path / ADAPTER_CONFIG).write_text(json.dumps(cfg, indent=2) + "\n")


def load_adapter(model: nn.Module, path: str | Path) -> nn.Module:
    """Inject the adapter saved in ``path`` into ``model`` and load its weights (unmerged).

    Raises:
        ValueError: the adapter's keys do not match the injected layers.
    """
    path = Path(path)
    c = json.loads((path / ADAPTER_CONFIG).read_text())
    apply_lora(model, int(c["r"]), int(c["lora_alpha"]), float(c["lora_dropout"]), c["target_modules"])
    want = {_strip(k): k for k in model.state_dict() if "lora_" in k}
    got = read_safetensors(path / ADAPTER_FILE, "adapter file")
    if set(got) != set(want):
        missing, extra = sorted(set(want) - set(got))[:4], sorted(set(got) - set(want))[:4]
        raise ValueError(f"{path / ADAPTER_FILE} does not match the model: missing {missing}, unexpected {extra}")
    model.load_state_dict({want[k]: v for k, v in got.items()}, strict=False)
    return model
