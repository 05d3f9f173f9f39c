"""What a task declares so the model can build itself from it: shapes, classes, readout.

Kept apart from tasks.base (which imports Lightning for the task's LightningDataModule), so the model layer
reads a TaskSpec without importing Lightning.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from fpt.config.schema import READOUTS  # noqa: F401 - the readouts, declared once with the option schemas


@dataclass(frozen=True)
class TaskSpec:
    """Shapes a task feeds the model: tokens x dim (or vocabulary), classes (outputs per target), readout, objective."""

    seq_len: int  # tokens per example (the maximum, for variable-length tasks)
    num_classes: int  # classes per target
    readout: str = "last"  # one of READOUTS: last_k: the last k positions; last: last real token; mean: mean over real tokens;
    # flatten: all seq_len positions side by side (fixed length: the output layer reads seq_len x hidden)
    token_dim: int | None = None  # continuous tokens: features per token (through a Linear)
    vocab_size: int | None = None  # discrete tokens: vocabulary size (through an Embedding)
    pad_id: int | None = None  # discrete tokens: the padding id
    words: tuple[str, ...] | None = None  # discrete tokens: each id's string (model.input_init=trunk_tokens reads them)
    k: int = 1  # positions read by `last_k`
    targets_per_position: int = 1  # e.g. 50 bits per position for bit memory
    truncatable: bool = False  # variable-length task: may be cut to a trunk's position limit (see Task.fit_to)
    objective: str = "classification"  # classification | multilabel | regression | forecast (fpt/run/objectives.py)
    target_loc: float = 0.0  # regression: targets were standardised as (y - loc) / scale; metrics map them back
    target_scale: float = 1.0
    head_dropout: float = 0.0  # dropout on the readout features, before the output layer

    def __post_init__(self):
        if (self.token_dim is None) == (self.vocab_size is None):
            raise ValueError("a TaskSpec sets exactly one of token_dim and vocab_size")
        if self.objective not in ("classification", "multilabel", "regression", "forecast"):
            raise ValueError(f"unknown objective {self.objective!r}")
        if self.readout == "flatten" and self.truncatable:
            raise ValueError("the flatten readout needs fixed-length examples; a truncatable task has variable lengths")

    @property
    def chance(self) -> float | None:
        """A classifier's accuracy when it guesses uniformly, 1 / classes per target (None for other objectives)."""
        return 1 / self.num_classes if self.objective == "classification" else None

    @property
    def n_targets(self) -> int:
        """Targets per example: k * targets_per_position for last_k, else targets_per_position."""
        return (self.k if self.readout == "last_k" else 1) * self.targets_per_position

    def record(self) -> dict:
        """The spec as plain values (saved with a run's checkpoints: fpt predict rebuilds the model from it)."""
        d = asdict(self)
        return {**d, "words": None if self.words is None else list(self.words)}

    @classmethod
    def from_record(cls, record: dict) -> TaskSpec:
        """The spec `record()` wrote."""
        known = {f.name for f in fields(cls)}  # a newer version's keys are left out
        words = record.get("words")
        return cls(**{k: v for k, v in record.items() if k in known and k != "words"}, words=None if words is None else tuple(words))
