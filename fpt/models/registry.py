"""Every model kind and every PEFT method, one entry each beside its code: this file only lists them. Importing
fpt.models registers them in fpt.config.kinds and fpt.config.methods, where the option checks, the trust check, the
builder and the report find them."""

from __future__ import annotations

from fpt.config.kinds import ModelKind, register
from fpt.config.methods import PeftMethod, register_methods
from fpt.models.ablations import ATTN1, BLOCK1, NO_TRUNK
from fpt.models.adapters import BITFIT, IA3, LN_TUNING, LORA, NONE
from fpt.models.baselines import LSTM
from fpt.models.build import FPT
from fpt.models.linformer import LINFORMER

ENTRIES: tuple[ModelKind, ...] = (FPT, LSTM, LINFORMER, NO_TRUNK, ATTN1, BLOCK1)
KINDS = register(*ENTRIES)

PEFT_ENTRIES: tuple[PeftMethod, ...] = (NONE, LORA, IA3, LN_TUNING, BITFIT)
METHODS = register_methods(*PEFT_ENTRIES)
