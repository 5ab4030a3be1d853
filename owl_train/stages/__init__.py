"""Training stages: stage 1 (continued pretraining on the mix), stage 2 (P-tuning), the shared
loop, checkpoints (training state, merge, zero-to-fp32), LoRA and the prompt encoder."""

from owl_train.stages.checkpoints import load_model_dir, merge, save_model_dir, zero_to_fp32
from owl_train.stages.loop import LoopResult, train
from owl_train.stages.module import TrainModule
from owl_train.stages.ptuning import PromptEncoder, generate_batch
from owl_train.stages.stage1 import run_stage1
from owl_train.stages.stage2 import run_stage2

__all__ = ["run_stage1", "run_stage2", "train", "TrainModule", "LoopResult", "PromptEncoder", "generate_batch",
           "load_model_dir", "save_model_dir", "merge", "zero_to_fp32"]
