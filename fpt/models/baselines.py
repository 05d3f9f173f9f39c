"""LSTM baselines with the FPT model's input layer, readout and output layer.

`model=lstm` is the paper's 3-layer LSTM: the 2021 code's layer-normalised LSTM (LNLSTM built from
LayerNormLSTM cells, hidden 768, dropout 0.1, unidirectional, not residual). Per step, one cell:

    pre = LN_ih(W_ih x_t + b_ih) + LN_hh(W_hh h + b_hh)        (4h; gate order i, f, o, g)
    c   = LN_c(sigmoid(f) * c + sigmoid(i) * tanh(g))
    h   = dropout(sigmoid(o) * tanh(c))

As in the 2021 code, the normalised c is the next step's cell state (Ba et al. 2016 carry the raw
one), and the dropped h (their in-place dropout) is both the layer's output and its next state.
Pre-activations x_t W_ih and their layernorm are computed for all steps before the time loop.

`model=lstm_star` is LSTM* (paper 3.3): 12 such layers, each adding its input to its output (the
2021 LNLSTM's `residual`; each cell normalises its own pre-activations, so no pre-norms), with
learned position embeddings. `model=lstm_plain` is torch's fused nn.LSTM (`model.cell=plain`): no
layernorms; as LSTM* (`model.residual=true`) each layer gets a pre-layernorm.

Where this differs from the 2021 code, on purpose:
- the initial (h, c) is zeros; theirs was drawn afresh (Xavier-normal) on every forward, so a
  prediction was random even in eval mode;
- layernorm gains/biases start at ones/zeros (torch's LayerNorm: biased variance, eps 1e-6); theirs
  started uniform(-1/sqrt(n), 1/sqrt(n)) and used the unbiased variance;
- kept: cell weights and biases uniform(-1/sqrt(h), 1/sqrt(h)), as in theirs and torch's nn.LSTM.

Axes: b batch, t tokens, h hidden size, g = 4h gate pre-activations.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fpt.config.groups import assign_groups
from fpt.config.kinds import ModelKind
from fpt.config.schema import Count, Dropout, Flag, choice
from fpt.config.sections import ModelCommon
from fpt.models.wrapper import FPTModel, call_body, input_options
from fpt.tasks.spec import TaskSpec

CELLS = ("ln", "plain")
LN_EPS = 1e-6  # the 2021 LayerNorm's epsilon

# Anchored (re.fullmatch) patterns over LSTMBody parameter names; each name matches one group only.
LSTM_GROUPS = {
    "rnn": [r"rnn\.(\d+\.)?(weight|bias)_(ih|hh)(_l\d+)?"],  # LN cells: rnn.N.weight_ih; nn.LSTM: rnn[.N].weight_ih_lK
    "ln": [r"rnn\.\d+\.ln_(ih|hh|c)\.(weight|bias)", r"ln\.\d+\.(weight|bias)"],  # cell norms; plain LSTM*'s pre-norms
    "pos": [r"wpe\.weight"],
}


class LNLSTMCell(nn.Module):
    """One layer-normalised LSTM layer (the 2021 LayerNormLSTM), run over a whole sequence."""

    def __init__(self, input_size: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.hidden, self.dropout = hidden, dropout
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden, hidden))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden))
        self.bias_hh = nn.Parameter(torch.empty(4 * hidden))
        bound = 1 / math.sqrt(hidden)
        for p in (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh):
            nn.init.uniform_(p, -bound, bound)
        self.ln_ih = nn.LayerNorm(4 * hidden, eps=LN_EPS)
        self.ln_hh = nn.LayerNorm(4 * hidden, eps=LN_EPS)
        self.ln_c = nn.LayerNorm(hidden, eps=LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, t, input) -> hidden states (b, t, h), from zero initial states."""
        pre_ih = self.ln_ih(F.linear(x, self.weight_ih, self.bias_ih))  # (b, t, g): all steps at once
        h = c = x.new_zeros(x.shape[0], self.hidden)
        out = []
        for pre_ih_s in pre_ih.unbind(1):  # unbind, not pre_ih[:, s]: one backward copy, not one per step
            h, c = self.step(pre_ih_s, h, c)
            out.append(h)
        return torch.stack(out, 1)  # (b, t, h)

    def step(self, pre_ih: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step: normalised input pre-activations (b, g) and state (b, h), (b, h) -> new (h, c)."""
        pre = pre_ih + self.ln_hh(F.linear(h, self.weight_hh, self.bias_hh))  # (b, g)
        i, f, o = pre[:, : 3 * self.hidden].sigmoid().chunk(3, dim=1)
        g = pre[:, 3 * self.hidden :].tanh()
        c = self.ln_c(f * c + i * g)
        h = F.dropout(o * c.tanh(), self.dropout, self.training)
        return h, c


class LNLSTM(nn.ModuleList):
    """Stacked LN-LSTM layers over (b, t, h); `residual` adds each layer's input to its output."""

    def __init__(self, hidden: int, layers: int, dropout: float = 0.0, residual: bool = False):
        super().__init__(LNLSTMCell(hidden, hidden, dropout) for _ in range(layers))
        self.residual = residual

    @property
    def num_layers(self) -> int:
        return len(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for cell in self:
            x = x + cell(x) if self.residual else cell(x)
        return x


class LSTMBody(nn.Module):
    """Stacked unidirectional LSTMs over (b, t, h) (`cell` ln or plain); optionally residual, with positions."""

    def __init__(self, hidden: int, layers: int, dropout: float = 0.0, residual: bool = False,
                 max_len: int | None = None, cell: str = "ln"):
        super().__init__()
        self.cell, self.residual = cell, residual
        self.wpe = nn.Embedding(max_len, hidden) if max_len else None
        if self.wpe is not None:
            nn.init.normal_(self.wpe.weight, std=0.02)
        if cell == "ln":  # each cell normalises its own pre-activations: no pre-norms
            self.rnn = LNLSTM(hidden, layers, dropout, residual)
        elif residual:  # one LSTM per layer so each can have its own skip connection and norm
            self.rnn = nn.ModuleList(nn.LSTM(hidden, hidden, batch_first=True) for _ in range(layers))
            self.ln = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(layers))
            self.drop = nn.Dropout(dropout)
        else:
            self.rnn = nn.LSTM(hidden, hidden, num_layers=layers, dropout=dropout, batch_first=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(b, t, h) -> (b, t, h). Right padding comes after every real token, so a unidirectional
        LSTM's states at real positions never see pads: no packing needed for any readout."""
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(x.shape[1], device=x.device))  # (b, t, h)
        if self.cell == "ln":
            return self.rnn(x)
        if not self.residual:
            return self.rnn(x)[0]
        for rnn, ln in zip(self.rnn, self.ln):
            x = x + self.drop(rnn(ln(x))[0])
        return x


def lstm_groups(body: LSTMBody) -> dict[str, str]:
    """LSTM parameter name -> freeze group: rnn (LSTM weights), ln (every layernorm), pos (LSTM* positions)."""
    return assign_groups((n for n, _ in body.named_parameters()), LSTM_GROUPS)


def build_lstm(cfg, spec: TaskSpec) -> FPTModel:
    """An LSTM (or LSTM*) body inside the FPT wrapper, sized by `model.hidden` and `model.layers`."""
    mcfg = cfg.model  # checked by LSTMOptions when the config was composed
    hidden, layers, dropout = int(mcfg.hidden), int(mcfg.layers), float(mcfg.get("dropout", 0.0))
    cell = mcfg.get("cell", "plain")  # no model.cell: a config saved before it existed, when every LSTM was torch's nn.LSTM
    body = LSTMBody(hidden, layers, dropout, bool(mcfg.get("residual", False)),
                    spec.seq_len if mcfg.get("positions", False) else None, cell)
    return FPTModel(spec, body, hidden, lstm_groups(body), call_body, mcfg.get("readout"), **input_options(mcfg))


class LSTMOptions(ModelCommon):
    cell: choice("ln", "plain") = "plain"  # plain: a config saved before model.cell existed
    hidden: Count
    layers: Count
    dropout: Dropout = 0.0
    residual: Flag = False
    positions: Flag = False


LSTM = ModelKind("lstm", LSTMOptions, build_lstm, trunk=False, groups=tuple(LSTM_GROUPS))
