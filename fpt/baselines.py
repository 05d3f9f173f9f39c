"""LSTM baselines with the FPT model's input layer, readout and output layer.

`model=lstm` is the paper's 3-layer LSTM; `model=lstm_star` is LSTM*: 12 layers with residual
connections, layernorms and learned position embeddings.
"""

from __future__ import annotations

import torch
from torch import nn

from fpt.model import FPTModel
from tasks.base import TaskSpec


class LSTMBody(nn.Module):
    """Stacked unidirectional LSTMs over (b, t, h); optionally residual with pre-norms and positions."""

    def __init__(self, hidden: int, layers: int, dropout: float = 0.0, residual: bool = False, max_len: int | None = None):
        super().__init__()
        self.residual = residual
        self.wpe = nn.Embedding(max_len, hidden) if max_len else None
        if residual:  # one LSTM per layer so each can have its own skip connection and norm
            self.rnn = nn.ModuleList(nn.LSTM(hidden, hidden, batch_first=True) for _ in range(layers))
            self.ln = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(layers))
        else:
            self.rnn = nn.LSTM(hidden, hidden, num_layers=layers, dropout=dropout, batch_first=True)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(x.shape[1], device=x.device))  # (b, t, h)
        if not self.residual:
            return self.rnn(x)[0]
        for rnn, ln in zip(self.rnn, self.ln):
            x = x + self.drop(rnn(ln(x))[0])
        return x


def _lstm_forward(body: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # Right padding comes after every real token, so a unidirectional LSTM's states at real
    # positions never see pads: no packing needed for the last-token or masked-mean readouts.
    return body(x, mask)


def lstm_groups(body: LSTMBody) -> dict[str, str]:
    """LSTM parameter name -> freeze group (rnn, ln, pos)."""
    out = {}
    for name, _ in body.named_parameters():
        out[name] = "pos" if name.startswith("wpe.") else "ln" if name.startswith("ln.") else "rnn"
    return out


def build_lstm(mcfg, spec: TaskSpec) -> FPTModel:
    """An LSTM (or LSTM*) body inside the FPT wrapper, sized by `model.hidden` and `model.layers`."""
    hidden = int(mcfg.hidden)
    body = LSTMBody(
        hidden, int(mcfg.layers), float(mcfg.get("dropout", 0.0)), bool(mcfg.get("residual", False)),
        spec.seq_len if mcfg.get("positions", False) else None,
    )
    return FPTModel(spec, body, hidden, lstm_groups(body), _lstm_forward, mcfg.get("readout"))
