"""A tiny byte-level BPE tokenizer with the Qwen2-VL special tokens plus ``<|point|>`` and
``<|crop_pad|>`` (the foveal crop's placeholder, variant (e)).

Trained with the ``tokenizers`` library and written as ``tokenizer.json`` +
``tokenizer_config.json``, the files ``transformers.AutoTokenizer.from_pretrained(DIR)`` reads
offline (as a ``PreTrainedTokenizerFast``). No transformers import here.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

__all__ = ["SPECIAL_TOKENS", "CHAT_TEMPLATE", "BUILTIN_TEXT", "train_tokenizer"]

# Qwen2-VL's special tokens (its tokenizer_config.json) that the model and data path use, plus ours.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
    "<|video_pad|>", "<|point|>", "<|crop_pad|>",
)
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
BUILTIN_TEXT = """\
A person wearing smart glasses looks at something in the street and asks about it.
The car parked on the left is red, and the bus behind it is waiting at the stop.
What is this? This is a bicycle leaning against a lamp post near the crossing.
Describe the object in detail. It is a white delivery truck with its rear doors open.
The pedestrian in a yellow jacket is crossing the road while the light is green.
Is it safe to cross now? No, a motorcycle is approaching quickly from the right.
The traffic sign above the lane says that the speed limit is thirty kilometres per hour.
A rider on a scooter turns left; two cars wait behind the tram at the intersection.
Where is the nearest bus stop? It is across the street, next to the bakery with a blue awning.
The building on the corner has large windows, a green door and a bicycle rack in front.
How many people are waiting? Three people stand under the shelter, one holds an umbrella.
user assistant system image point question answer caption grounding region object box
0 1 2 3 4 5 6 7 8 9 10 100 1000 (120,340),(560,780) left right top bottom centre middle
"""


def train_tokenizer(out_dir: str | Path, text: str | None = None, vocab_size: int = 1024,
                    model_max_length: int = 32768) -> dict[str, int]:
    """Train on ``text`` (default :data:`BUILTIN_TEXT`), write the files, return the special ids."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = (text if text is not None else BUILTIN_TEXT * 4).splitlines() or [""]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(lines, trainer)
    tok.save(str(out / "tokenizer.json"))
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    specials = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
    extra = [t for t in SPECIAL_TOKENS if t not in specials.values()]
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": model_max_length,
        "bos_token": None, "unk_token": None, **specials,
        "extra_special_tokens": extra, "additional_special_tokens": extra,
        "clean_up_tokenization_spaces": False, "chat_template": CHAT_TEMPLATE,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    (out / "special_tokens_map.json").write_text(json.dumps({**specials, "additional_special_tokens": extra},
                                                            indent=2) + "\n")
    return {**ids, "__vocab_size__": tok.get_vocab_size()}
