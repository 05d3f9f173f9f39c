"""results.json as one typed record: `Results`, read and written only here.

The file's keys are the ones the toolkit has always written: a finished run (status "ok") writes every field,
null where it does not apply; a preempted run its status, steps, task and seed; a failed run its status and
error. Every key with a slash (val/acc, test/mse, train/acc, superfamily/acc, baseline/1nn_acc, ...) is a score:
`Results.scores` holds them by that name. Keys this version does not know are kept (`other`) and written back
as they were, so a file from a newer version survives a read and a write.

A `Results` also reads as the mapping results.json holds (`res["test/acc"]`), for code and tests that compare
the record with the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from fpt.checkpoint import write_json

NAME = "results.json"
BASELINE = "baseline/"  # the task's reference numbers: written after the run's own scores
# the keys each status writes, null included, in the file's order ("scores": the run's, "baselines": the task's)
KEYS = {
    "ok": ("status", "task", "model", "trunk", "init", "freeze", "peft", "peft_r", "seed", "lr", "precision", "trunk_dtype",
           "objective", "metric", "mode", "scores", "params_trainable", "params_used", "params_total", "truncation",
           "baselines", "steps", "sec_per_step", "epoch_seconds", "feature_cache", "best_checkpoint", "best_step",
           "steps_to", "resumed", "wall_seconds"),
    "preempted": ("status", "steps", "task", "seed"),
    "failed": ("status", "error"),
}
JOB = ("overrides", "label")  # a Hydra job's keys: written last


def job_keys(extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """Results' keyword arguments for a Hydra job's `extra` (overrides, label; any other key kept as it is)."""
    rest = dict(extra or {})
    job = {k: rest.pop(k) for k in JOB if k in rest}
    return {**job, "other": rest}


@dataclass(eq=False)
class Results(Mapping):
    """One run's record. Field order is the file's key order (scores and baselines go where `KEYS` puts them)."""

    status: str = "failed"  # ok, preempted, failed
    task: str | None = None
    model: str | None = None
    trunk: str | None = None  # None: a baseline without a pretrained trunk
    init: str | None = None
    freeze: list[str] | None = None
    peft: str | None = None
    peft_r: int | None = None
    seed: int | None = None
    lr: float | None = None
    precision: str | None = None  # trainer.precision as resolved (auto: bf16-mixed on bf16 hardware)
    trunk_dtype: str | None = None
    objective: str | None = None
    chance: float | None = None  # a classifier's accuracy when it guesses uniformly: 1 / classes per target
    metric: str | None = None  # the validation metric that selected the checkpoint; its direction: mode
    mode: str | None = None
    scores: dict[str, Any] = field(default_factory=dict)  # "val/acc" -> 0.93, "baseline/note" -> "..."
    params_trainable: int | None = None
    params_used: int | None = None  # trainable values the task can reach (fpt.models.freeze.count_used)
    params_total: int | None = None
    truncation: dict | None = None
    steps: int | None = None
    sec_per_step: float | None = None  # host seconds per training step
    epoch_seconds: list[float] | None = None  # training time of each finished epoch (validation excluded)
    feature_cache: dict | None = None  # output-only runs on cached features: path, hit, seconds
    best_checkpoint: str | None = None
    best_step: int | None = None  # the step of the tested checkpoint
    steps_to: dict[str, int | None] | None = None  # target -> the first step val reached it (None: never)
    improving_at_end: bool | None = None  # the best validation came at one of the last two and the step budget ended
    #                                       the run: a snapshot of a run still learning, not a converged value
    resumed: list[dict] | None = None  # [{step, changed: {key: [old, new]}}] per resume of this run
    wall_seconds: float | None = None
    overrides: dict[str, str] | None = None  # the Hydra job's command-line overrides (absent outside a Hydra job)
    label: str | None = None
    error: str | None = None  # a failed run: why, in one line
    other: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as read

    @property
    def finished(self) -> bool:
        """The run completed: its scores are final."""
        return self.status == "ok"

    def score(self, split: str, metric: str | None = None) -> float | None:
        """`split`/`metric` (the run's own metric unless named): score("test") is test/acc for a classifier."""
        return self.scores.get(f"{split}/{metric or self.metric or 'acc'}")

    def to_json(self) -> dict[str, Any]:
        """The mapping results.json holds."""
        keys = KEYS.get(self.status, ("status",))
        rest = [f.name for f in fields(self) if f.name not in (*keys, *JOB, "scores", "other") and getattr(self, f.name) is not None]
        out: dict[str, Any] = {}
        for k in (*keys, *rest):
            if k == "scores":
                out.update({s: v for s, v in self.scores.items() if not s.startswith(BASELINE)})
            elif k == "baselines":
                out.update({s: v for s, v in self.scores.items() if s.startswith(BASELINE)})
            else:
                out[k] = getattr(self, k)
        if "scores" not in keys:
            out.update(self.scores)
        if self.overrides is not None:  # a Hydra job's record: its overrides, and but for a failure its label (null too)
            out["overrides"] = self.overrides
        if self.label is not None or (self.overrides is not None and self.status != "failed"):
            out["label"] = self.label
        return {**out, **self.other}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Results:
        """The record of a results.json mapping (any version's: missing keys read None, unknown ones are kept)."""
        known = {f.name for f in fields(cls)} - {"scores", "other"}
        kw: dict[str, Any] = {"scores": {}, "other": {}}
        for k, v in data.items():
            if "/" in k:
                kw["scores"][k] = v
            elif k in known:
                kw[k] = v
            else:
                kw["other"][k] = v
        kw.setdefault("status", "failed")
        return cls(**kw)

    @classmethod
    def read(cls, run_dir: Path) -> Results | None:
        """The run directory's results.json; None when it has none or it does not parse."""
        try:
            data = json.loads((Path(run_dir) / NAME).read_text())
        except (OSError, ValueError):
            return None
        return cls.from_json(data) if isinstance(data, dict) else None

    def write(self, run_dir: Path, name: str = NAME) -> Path:
        """Write it atomically (a crash leaves the previous file whole); `name`: failure.json beside a finished run's."""
        path = Path(run_dir) / name
        write_json(path, self.to_json())
        return path

    # the mapping view: results.json's keys
    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_json())

    def __len__(self) -> int:
        return len(self.to_json())
