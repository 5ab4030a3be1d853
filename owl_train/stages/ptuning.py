"""Stage 2's P-tuning: a prompt encoder making N virtual token embeddings, kept in M-RoPE.

P-tuning (Liu et al. 2021, "GPT Understands, Too"; PEFT ``PromptEncoder`` with the MLP
reparameterisation): trainable embeddings (N, D) pass through an MLP
``Linear(D, H) - ReLU - Linear(H, H) - ReLU - Linear(H, D)`` and only that network is trained.
PEFT prepends the virtual tokens and drops position ids; here the collator places them right
after ``<|point|>`` in a user turn without a question (``virtual_mask``) with text position
ids, and :func:`embed_batch` writes the encoder's output over those positions of the input
embeddings, so the model sees them at M-RoPE positions like any text token.

On disk (beside the model's files): ``prompt_encoder.safetensors`` (this module's state) and
``prompt_encoder.json`` (``{"num_virtual_tokens", "dim", "hidden"}``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from owl_train.model.checkpoint import CheckpointError, read_safetensors
from owl_train.model.generate import generate
from owl_train.model.model import OwlVL

__all__ = ["PromptEncoder", "PROMPT_FILE", "PROMPT_JSON", "embed_batch", "generate_batch",
           "save_prompt_encoder", "load_prompt_encoder"]

PROMPT_FILE = "prompt_encoder.safetensors"
PROMPT_JSON = "prompt_encoder.json"


class PromptEncoder(nn.Module):
    """N virtual tokens: embedding (N, D) -> MLP -> (N, D)."""

    def __init__(self, num_virtual_tokens: int, dim: int, hidden: int = 0, seed: int = 0) -> None:
        super().__init__()
        self.num_virtual_tokens, self.dim, self.hidden = num_virtual_tokens, dim, hidden or dim
        self.embedding = nn.Embedding(num_virtual_tokens, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, self.hidden), nn.ReLU(), nn.Linear(self.hidden, self.hidden),
                                 nn.ReLU(), nn.Linear(self.hidden, dim))
        g = torch.Generator().manual_seed(seed)  # never the global RNG
        with torch.no_grad():
            for name, p in sorted(self.named_parameters()):
                if name.endswith("bias"):
                    p.zero_()
                elif name.startswith("embedding"):
                    p.copy_(torch.randn(p.shape, generator=g))
                else:  # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
                    bound = p.shape[1] ** -0.5
                    p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * bound)

    def forward(self) -> Tensor:
        return self.mlp(self.embedding.weight)  # (N, D)

    def describe(self) -> dict[str, int]:
        return {"num_virtual_tokens": self.num_virtual_tokens, "dim": self.dim, "hidden": self.hidden}


def embed_batch(model: OwlVL, batch: Mapping[str, Any], prompt: PromptEncoder | None) -> Tensor:
    """The input embeddings (B, L, D) of a collated batch, virtual positions from ``prompt``.

    Raises:
        ValueError: the batch has virtual tokens but no prompt encoder, or a count that is
            not a multiple of N.
    """
    x = model.embed(batch["input_ids"], batch.get("pixel_values"), batch.get("image_grid_thw"),
                    batch.get("points"))  # (B, L, D)
    vm = batch.get("virtual_mask")
    if vm is None or not bool(vm.any()):
        return x
    if prompt is None:
        raise ValueError("the batch has stage-2 virtual tokens but the model has no prompt encoder; "
                         "collate with num_virtual_tokens=0 or load a stage-2 model")
    n = int(vm.sum())
    if n % prompt.num_virtual_tokens:
        raise ValueError(f"{n} virtual positions is not a multiple of the prompt encoder's "
                         f"{prompt.num_virtual_tokens} virtual tokens")
    v = prompt().to(x.dtype).repeat(n // prompt.num_virtual_tokens, 1)  # (n, D), in reading order
    return x.masked_scatter(vm.unsqueeze(-1), v)


@torch.no_grad()
def generate_batch(model: OwlVL, batch: Mapping[str, Any], prompt: PromptEncoder | None = None, *,
                   max_new_tokens: int = 32, eos_token_id: int | list[int] | None = None, pad_token_id: int = 0,
                   do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
                   use_cache: bool = True) -> Tensor:
    """Continue each row of a collated batch (left padded when B > 1); returns new ids (B, T).

    Like :func:`owl_train.model.generate.generate` but from input embeddings (so stage 2's
    virtual tokens take part) and the collator's position ids. New tokens continue at the
    row's largest position + 1. ``use_cache=False`` recomputes the whole sequence each step.
    """
    ids, mask = batch["input_ids"], batch["attention_mask"]
    if ids.shape[0] > 1 and not bool(mask[:, -1].all()):
        raise ValueError("batched generation needs left padding: collate with padding_side='left'")
    was_training = model.training
    model.eval()
    try:
        x = embed_batch(model, batch, prompt)  # (B, L, D)
    finally:
        model.train(was_training)
    return generate(model, ids, attention_mask=mask, inputs_embeds=x, position_ids=batch["position_ids"],
                    max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature, top_p=top_p,
                    seed=seed, eos_token_id=eos_token_id, pad_token_id=pad_token_id, use_cache=use_cache)


def save_prompt_encoder(prompt: PromptEncoder, path: str | Path) -> None:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in prompt.state_dict().items()}, str(path / PROMPT_FILE),
              metadata={"format": "pt"})
    (path / PROMPT_JSON).write_text(json.dumps(prompt.describe(), indent=2) + "\n")


def load_prompt_encoder(path: str | Path) -> PromptEncoder | None:
    """The prompt encoder saved in model folder ``path``, or None when it has none."""
    path = Path(path)
    if not (path / PROMPT_JSON).is_file():
        return None
    d = json.loads((path / PROMPT_JSON).read_text())
    p = PromptEncoder(int(d["num_virtual_tokens"]), int(d["dim"]), int(d["hidden"]))
    try:
        p.load_state_dict(read_safetensors(path / PROMPT_FILE, "prompt encoder file"))
    except RuntimeError as exc:  # other names or shapes than prompt_encoder.json describes
        raise CheckpointError(f"{path / PROMPT_FILE} does not fit {path / PROMPT_JSON}: "
                              f"{str(exc).splitlines()[0][:200]}") from None
    return p
