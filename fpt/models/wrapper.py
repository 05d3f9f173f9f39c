"""The FPT wrapper: input layer -> sequence body (a trunk, an LSTM, a Linformer) -> readout -> output layer.

Kept apart from the builders (fpt/models/build.py), which import the baselines that import this module.

Axes: b batch, t tokens, d token features (task side), h hidden size (trunk side),
k read positions, n targets per example, c classes.

Readouts: last_k (b, k, h), last and mean (b, h), flatten (b, t*h): every position side by side, so the output
layer reads seq_len x hidden (One Fits All's forecasting head; fixed-length tasks that declare it only).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable

import torch
from einops import rearrange, reduce
from torch import nn

from fpt.errors import FPTError
from fpt.tasks.spec import TaskSpec

BodyForward = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
INPUT_GAIN, INPUT_DROPOUT = 1.41, 0.1  # the 2021 code's orth_gain and dropout after the input layer


class FPTModel(nn.Module):
    """Task tokens in through `input`, a sequence body (`trunk`), task logits out through `output`."""

    def __init__(self, spec: TaskSpec, trunk: nn.Module, hidden: int, groups: dict, body_forward: BodyForward,
                 readout: str | None = None, input_gain: float = INPUT_GAIN, input_dropout: float = INPUT_DROPOUT,
                 input_width: int | None = None):
        """`hidden`: the width the body returns (the output layer reads it); `input_width`: the width it takes
        (the input layer maps to it; default `hidden`; ELECTRA and ALBERT embed narrower than they compute)."""
        super().__init__()
        width = hidden if input_width is None else int(input_width)
        self.spec = spec
        self.readout = readout or spec.readout
        if self.readout == "last_k" and spec.readout != "last_k":
            raise FPTError(f"model.readout=last_k needs a task with per-position targets; this task reads '{spec.readout}'")
        if self.readout == "flatten" and spec.readout != "flatten":
            raise FPTError(f"model.readout=flatten needs a task whose examples all have the same length and that declares it "
                           f"(task=forecast: task.readout=flatten); this task reads '{spec.readout}': leave model.readout null")
        if spec.vocab_size is not None:
            self.input = nn.Embedding(spec.vocab_size, width, padding_idx=spec.pad_id)
        else:
            self.input = nn.Linear(spec.token_dim, width)
            # the 2021 code's input layer: orthogonal with gain 1.41 (keeps token geometry, scaled up), zero bias
            nn.init.orthogonal_(self.input.weight, gain=float(input_gain))
            nn.init.zeros_(self.input.bias)
        self.input_drop = nn.Dropout(float(input_dropout))  # the 2021 code's Dropout(0.1) after the input layer
        self.trunk = trunk
        reads = spec.seq_len if self.readout == "flatten" else 1  # flatten: the output layer sees every position
        self.head_drop = nn.Dropout(spec.head_dropout) if spec.head_dropout > 0 else nn.Identity()  # Identity: no RNG draw
        self.output = nn.Linear(hidden * reads, spec.targets_per_position * spec.num_classes)
        self.trunk_groups = groups  # trunk parameter name -> group, from the trunk's own map
        self._body_forward = body_forward
        self.fixed_features = False  # set by build_model when only the output layer trains
        self.compute_dtype: torch.dtype | None = None  # bf16: the frozen trunk is stored in bf16 (fpt/run/precision.py)
        self.read_block: nn.Module | None = None  # the last block, computed at the read positions only (trunks/readout.py)
        self.never_trained: frozenset[str] = frozenset()  # parameters the body never uses: frozen whatever `freeze` says
        self.per_example = False  # fpt.build: logits (b, c), not (b, 1, c), for one target per example (a hand-written loop's shape)

    def train(self, mode: bool = True) -> FPTModel:
        """Output-only runs keep everything before the output layer in eval mode (no dropout): one regime,
        a fixed feature extractor, whether its features are cached (fpt/run/features.py) or computed every step."""
        super().train(mode)
        if mode and self.fixed_features:
            for part in (self.input, self.input_drop, self.trunk):
                part.eval()
        return self

    def trained_groups(self) -> set[str]:
        """The groups with at least one trainable tensor."""
        groups = self.param_groups()
        return {groups[n] for n, p in self.named_parameters() if p.requires_grad}

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (b, t, d) or (b, t) ids, mask (b, t) (None: every position real) -> logits (b, n, c); with `per_example`
        set (fpt.build) a sequence readout's one target per example gives (b, c)."""
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        with self.compute_context(x.device.type):
            out = self.head(self.features(x, mask))
        return out[:, 0] if self.per_example and self.readout != "last_k" and out.shape[1] == 1 else out

    def features(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Everything before the output layer: readout features (b, k, h) or (b, h)."""
        if self.read_block is not None:
            self.read_block._fpt_read = (self.read_positions(mask), mask.bool())
        try:
            with self.compute_context(x.device.type):
                h = self._body_forward(self.trunk, self.input_drop(self.input(x)), mask)  # (b, t, h)
        finally:
            if self.read_block is not None:
                self.read_block._fpt_read = None
        return self.read(h, mask)

    def read_positions(self, mask: torch.Tensor) -> torch.Tensor:
        """(b, k) positions the readout reads: the last k (last_k) or the last real token (last)."""
        b, t = mask.shape
        if self.readout == "last_k":
            return torch.arange(t - self.spec.k, t, device=mask.device).expand(b, -1)
        return (mask.long().sum(1).clamp_min(1) - 1)[:, None]

    def compute_context(self, device_type: str):
        """bf16 autocast when the frozen trunk is stored in bf16 and no autocast is on yet (Lightning's bf16-mixed
        has one on during training; evaluation and analysis outside it need this one)."""
        if self.compute_dtype is None or torch.is_autocast_enabled(device_type):
            return nullcontext()
        return torch.autocast(device_type, dtype=self.compute_dtype)

    def read(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(b, t, h) -> (b, k, h) for last_k, (b, t*h) for flatten, else (b, h)."""
        if self.readout == "last_k":
            return h[:, -self.spec.k :]
        if self.readout == "flatten":
            if h.shape[1] != self.spec.seq_len:
                raise FPTError(f"the flatten readout reads exactly {self.spec.seq_len} positions, got a batch of {h.shape[1]}; "
                               f"it needs fixed-length examples: use the mean readout")
            return rearrange(h * mask.unsqueeze(-1).to(h.dtype), "b t h -> b (t h)")  # pads (none in forecast) read as zeros
        if self.readout == "mean":
            m = mask.unsqueeze(-1).to(h.dtype)
            return reduce(h * m, "b t h -> b h", "sum") / m.sum(1).clamp_min(1)
        last = mask.long().sum(1).clamp_min(1) - 1  # index of the last real token (right padding)
        return h[torch.arange(h.shape[0], device=h.device), last]

    def head(self, r: torch.Tensor) -> torch.Tensor:
        """Readout features -> logits (b, n, c)."""
        c, r = self.spec.num_classes, self.head_drop(r)
        if r.dim() == 3:
            return rearrange(self.output(r), "b k (p c) -> b (k p) c", c=c)
        return rearrange(self.output(r), "b (p c) -> b p c", c=c)

    def param_groups(self) -> dict[str, str]:
        """Every parameter's freeze group: the trunk's map, plus `input` and `output`."""
        groups = {}
        for name, _ in self.named_parameters():
            top, _, rest = name.partition(".")
            groups[name] = self.trunk_groups[rest] if top == "trunk" else top
        return groups


def input_options(mcfg) -> dict:
    """The input layer's options from `model.*` (the 2021 code's gain and dropout by default)."""
    return {"input_gain": float(mcfg.get("input_gain", INPUT_GAIN)), "input_dropout": float(mcfg.get("input_dropout", INPUT_DROPOUT))}


def call_body(body: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The forward of a body that takes (tokens, mask) itself (the LSTM, the Linformer): FPTModel's `forward` argument."""
    return body(x, mask)
