"""The parameter-efficiency part of `fpt report`: test accuracy against the trainable values a run uses
(results.json's params_used), for every row of a sweep, as a table and one chart per task, so FPT, LoRA,
LN tuning, BitFit, IA3, full finetuning, scratch and the ablations sit side by side; and the note lines that
say what the ablation rows show."""

from __future__ import annotations

from pathlib import Path

from fpt.plots import pyplot, save

# model.kind -> what its row shows (printed under the table when the sweep has such a row)
NOTES = {
    "no_trunk": "no trunk: the input layer, the readout and the output layer alone. Every trunk row that does not beat it "
                "gains nothing from its trunk; the task's own layers reach this much.",
    "attn1": "1 attention layer (scratch): one self-attention layer trained from scratch. A pretrained trunk that does "
             "not beat it adds nothing that one fresh attention layer cannot learn.",
    "block1": "1 transformer block (scratch): one block trained from scratch, the smallest transformer. A frozen "
              "pretrained trunk should beat it with fewer trained values to show its pretraining matters.",
}


def section(cells: list[dict], rows: list[dict], plots: Path, title: str) -> tuple[list[str], Path | None]:
    """(report lines, plot path) for the cells that recorded params_used."""
    have = [c for c in cells if c.get("params_used") is not None]
    if not have:
        return [], None
    have.sort(key=lambda c: (c["task"], c["params_used"]))
    lines = ["", "## Parameter efficiency", "",
             "Test accuracy (%) of the selected learning rate against the trainable values the run uses "
             "(results.json's params_used: values that get a gradient), one row per variant and task.", "",
             "| task | variant | trainable values used | test accuracy (%) |", "|---|---|---|---|"]
    lines += [f"| {c['task']} | {c['variant']} | {c['params_used']:,} | {c['cell']} |" for c in have]
    kinds = {r["run_dir"]: r.get("model") for r in rows}
    shown = dict.fromkeys(kinds.get(c["runs"][0]) for c in have)
    notes = [NOTES[k] for k in shown if k in NOTES]
    if notes:
        lines += ["", *(f"- note: {n}" for n in notes)]
    return lines, plot(have, plots, title)


def plot(cells: list[dict], plots: Path, title: str) -> Path:
    """One panel per task: test accuracy (mean, error bars: std over seeds) vs trainable values used (log scale)."""
    plt = pyplot()
    tasks = list(dict.fromkeys(c["task"] for c in cells))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for c in (c for c in cells if c["task"] == task):
            ax.errorbar([c["params_used"]], [100 * c["test_mean"]], yerr=[100 * c["test_std"]], marker="o", capsize=3,
                        label=c["variant"])
            ax.annotate(c["variant"], (c["params_used"], 100 * c["test_mean"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set(title=task, xscale="log", xlabel="trainable values used (log)", ylabel="test accuracy (%)")
        ax.legend(fontsize=6)
    fig.suptitle(f"{title}\ntest accuracy vs trainable values", fontsize=10)
    return save(fig, plots / "accuracy_vs_params.png")
