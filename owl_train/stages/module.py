"""The trainable module both stages and the held-out loss use: the model (and stage 2's prompt
encoder) behind a forward that returns the next-token loss."""

from __future__ import annotations

from torch import Tensor, nn

from owl_train.model.model import OwlVL
from owl_train.stages.ptuning import PromptEncoder, embed_batch

__all__ = ["BATCH_TENSORS", "TrainModule", "lm_loss"]

# the collator's tensors that TrainModule.forward takes (the rest of a batch is bookkeeping)
BATCH_TENSORS = ("input_ids", "attention_mask", "labels", "position_ids", "pixel_values", "image_grid_thw",
                 "points", "virtual_mask", "segment_ids")


def lm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean next-token cross-entropy over supervised positions: logits (B, L, V), labels (B, L)."""
    shift_logits = logits[:, :-1].float()  # (B, L-1, V)
    shift_labels = labels[:, 1:]  # (B, L-1)
    n = (shift_labels != -100).sum()
    loss = nn.functional.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1),
                                       ignore_index=-100, reduction="sum")
    return loss / n.clamp(min=1)


class TrainModule(nn.Module):
    """The model (and stage 2's prompt encoder) with a forward that returns the LM loss."""

    def __init__(self, model: OwlVL, prompt: PromptEncoder | None = None) -> None:
        super().__init__()
        self.model = model
        self.prompt = prompt

    def forward(self, input_ids: Tensor, attention_mask: Tensor, labels: Tensor, position_ids: Tensor,
                pixel_values: Tensor | None = None, image_grid_thw: Tensor | None = None,
                points: Tensor | None = None, virtual_mask: Tensor | None = None,
                segment_ids: Tensor | None = None) -> Tensor:
        batch = {"input_ids": input_ids, "pixel_values": pixel_values, "image_grid_thw": image_grid_thw,
                 "points": points, "virtual_mask": virtual_mask}
        x = embed_batch(self.model, batch, self.prompt)  # (B, L, D)
        out = self.model(input_ids, attention_mask=attention_mask, position_ids=position_ids, inputs_embeds=x,
                         segment_ids=segment_ids)
        return lm_loss(out.logits, labels)
