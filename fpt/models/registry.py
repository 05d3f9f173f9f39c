"""Every model kind, one entry each beside its builder: this file only lists them. Importing fpt.models registers
them in fpt.config.kinds, where the option checks, the trust check and the report find them."""

from __future__ import annotations

from fpt.config.kinds import ModelKind, register
from fpt.models.ablations import ATTN1, BLOCK1, NO_TRUNK
from fpt.models.baselines import LSTM
from fpt.models.build import FPT
from fpt.models.linformer import LINFORMER

ENTRIES: tuple[ModelKind, ...] = (FPT, LSTM, LINFORMER, NO_TRUNK, ATTN1, BLOCK1)
KINDS = register(*ENTRIES)
