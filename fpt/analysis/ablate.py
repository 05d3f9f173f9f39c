"""Layer ablation at evaluation: re-test a checkpoint with one transformer block skipped at a time.

A skipped block is replaced by a module that returns its input hidden state in the block's own
output format (the trunk's TrunkSpec.block_output, seen in its probe forward): GPT2Block, BertLayer and
most blocks return the hidden-state tensor; T5Block returns (hidden, self-attention position bias,
cross-attention position bias). A block that returns a tuple still runs when skipped, for its side outputs
only, and passes its input hidden state on: T5's block 0 computes the relative position bias every later
block reuses, so skipping a block removes its computation on the residual stream, never the positions of
the blocks after it.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from fpt.analysis import blocks_of, checkpoint_of, parse_indices, write_csv
from fpt.errors import FPTError
import fpt.models  # noqa: F401 - registers the model kinds that has_trunk asks
from fpt.config.kinds import has_trunk


class SkipBlock(nn.Module):
    """Stands in for a transformer block: its input hidden state is its output."""

    def __init__(self, block: nn.Module, side_outputs: bool):
        super().__init__()
        self.block = block if side_outputs else None  # kept only to produce its side outputs

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs):
        if self.block is None:
            return hidden_states
        out = self.block(hidden_states, *args, **kwargs)
        return (hidden_states, *out[1:])


@contextmanager
def skipped(model: nn.Module, layer: int, side_outputs: bool):
    """Within the block, block `layer` of the model's trunk is skipped; it is put back afterwards."""
    blocks = blocks_of(model)
    original = blocks[layer]
    blocks[layer] = SkipBlock(original, side_outputs)
    try:
        yield model
    finally:
        blocks[layer] = original


@torch.no_grad()
def logits_of(model: nn.Module, batches: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (examples, targets, classes) and targets (examples, targets) over the batches."""
    logits = [model(b["x"], b["mask"]) for b in batches]
    return torch.cat(logits), torch.cat([b["y"] for b in batches])


def _test_batches(task) -> list[dict]:
    """The full test set as a list of batches (the same set `fpt eval` scores)."""
    task.prepare_data()
    task.setup("test")
    return list(task.test_dataloader())


def ablation_report(model: nn.Module, batches: list[dict], layers: list[int], side_outputs: bool) -> dict:
    """Per skipped block: test accuracy, its drop, the share of changed predictions, the mean |logit change|."""
    base, y = logits_of(model, batches)
    base_pred = base.argmax(-1)
    base_acc = float((base_pred == y).float().mean())
    rows = []
    for layer in layers:
        with skipped(model, layer, side_outputs):
            logits, _ = logits_of(model, batches)
        pred = logits.argmax(-1)
        acc = float((pred == y).float().mean())
        rows.append({"layer": layer, "test/acc": acc, "drop": base_acc - acc, "changed": float((pred != base_pred).float().mean()),
                     "logit_shift": float((logits - base).abs().mean())})  # a block can matter without flipping an argmax
    return {"test/acc": base_acc, "ablations": rows}


def evaluate_ablation(ckpt_path: str, layers: list[int] | str | None, overrides: list[str] | None = None) -> dict:
    """Re-test a checkpoint with each of `layers` skipped in turn; writes <ckpt>.ablation.{json,csv} beside it."""
    from fpt.checkpoint import META_KEY, load_checkpoint, write_json
    from fpt.run.train import restore

    path = checkpoint_of(ckpt_path)
    ckpt = load_checkpoint(path)
    kind = ckpt[META_KEY]["config"]["model"]["kind"]
    if not has_trunk(kind):
        raise FPTError(f"layer ablation skips the blocks of a transformer trunk; this checkpoint is a model.kind={kind} baseline")
    cfg, task, lit = restore(ckpt, overrides, cached=False)
    model = lit.model.eval()
    chosen = parse_indices(layers, len(blocks_of(model)), "ablate.layers")
    report = ablation_report(model, _test_batches(task), chosen, model.trunk_spec.block_output == "tuple")
    report = {"checkpoint": str(path), "task": cfg.task.name, "steps": int(ckpt.get("global_step", 0)), **report}
    write_json(path.with_name(f"{path.stem}.ablation.json"), report)
    intact = {"layer": "none", "test/acc": report["test/acc"], "drop": 0.0, "changed": 0.0, "logit_shift": 0.0}
    write_csv(path.with_name(f"{path.stem}.ablation.csv"), [intact, *report["ablations"]])
    return report


def format_report(report: dict) -> str:
    """The report as a small table for the terminal."""
    lines = [f"{'skipped block':>13}  {'test/acc':>8}  {'drop':>7}  {'changed':>7}  {'logit_shift':>11}",
             f"{'none':>13}  {report['test/acc']:8.4f}  {0:7.4f}  {0:7.4f}  {0:11.4f}"]
    for r in report["ablations"]:
        lines.append(f"{r['layer']:>13}  {r['test/acc']:8.4f}  {r['drop']:7.4f}  {r['changed']:7.4f}  {r['logit_shift']:11.4f}")
    return "\n".join(lines)
