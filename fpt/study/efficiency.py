"""The parameter-efficiency part of `fpt report`: each task's test metric (accuracy, F1, mAP in %; MSE, MAE as they
are; its direction marked) against the trainable values a run uses
(results.json's params_used), for every row of a sweep, as a table and one chart per task, so FPT, LoRA,
LN tuning, BitFit, IA3, full finetuning, scratch and the ablations sit side by side; and the note lines that
say what the ablation rows show."""

from __future__ import annotations

from pathlib import Path

from fpt.models.registry import KINDS
from fpt.run.objectives import MODES, PERCENT
from fpt.plots import pyplot, save
from fpt.study.figures import percent_axis

def section(cells: list[dict], rows: list[dict], plots: Path, title: str,
            chance: dict[str, float] | None = None) -> tuple[list[str], Path | None]:
    """(report lines, plot path) for the cells that recorded params_used; `chance`: task -> its chance accuracy."""
    have = [c for c in cells if c.get("params_used") is not None]
    if not have:
        return [], None
    have.sort(key=lambda c: (c["task"], c["params_used"]))
    lines = ["", "## Parameter efficiency", "",
             "Each task's test metric at the selected learning rate against the trainable values the run uses "
             "(results.json's params_used: values that can change the output), one row per variant and task.", "",
             "| task | variant | trainable values used | test value | metric |", "|---|---|---|---|---|"]
    lines += [f"| {c['task']} | {c['variant']} | {c['params_used']:,} | {c['cell']} | {axis_label(metric_of(c))} |"
              for c in have]
    kinds = {r["run_dir"]: r.get("model") for r in rows}
    shown = dict.fromkeys(kinds.get(c["runs"][0]) for c in have)
    notes = [KINDS[k].note for k in shown if k in KINDS and KINDS[k].note]  # each kind's own note (its entry)
    if notes:
        lines += ["", *(f"- note: {n}" for n in notes)]
    return lines, plot(have, plots, title, chance)


def metric_of(cell: dict) -> str:
    """The metric a cell's test value is in (cells from before objectives carried one: accuracy)."""
    return cell.get("metric") or "acc"


def axis_label(metric: str) -> str:
    """`acc (%) ↑`, `mse ↓`: the metric, percent only where reports show it so, and its better direction."""
    return f"{metric}{' (%)' if metric in PERCENT else ''} {'↑' if MODES.get(metric, 'max') == 'max' else '↓'}"


def plot(cells: list[dict], plots: Path, title: str, chance: dict[str, float] | None = None) -> Path:
    """One panel per task: its test metric (mean, error bars: std over seeds) vs trainable values used (log scale);
    a % metric on the 0-100 scale of every accuracy plot, with the task's chance line (`chance`: task -> fraction).
    Each variant keeps one colour and marker in every panel; one legend below the panels, so no point hides behind it."""
    plt = pyplot()
    tasks = list(dict.fromkeys(c["task"] for c in cells))
    variants = list(dict.fromkeys(c["variant"] for c in sorted(cells, key=lambda c: c["params_used"])))
    colours, markers = plt.get_cmap("tab20").colors, "osD^vP*Xh<>p"
    style = {v: dict(color=colours[(2 * i) % 20 + (i // 10) % 2], marker=markers[i % len(markers)]) for i, v in enumerate(variants)}
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4.6), squeeze=False)
    handles = {}
    for ax, task in zip(axes[0], tasks):
        mine = [c for c in cells if c["task"] == task]
        metric = metric_of(mine[0])
        k = 100 if metric in PERCENT else 1
        for c in mine:
            h = ax.errorbar([c["params_used"]], [k * c["test_mean"]], yerr=[k * c["test_std"]], capsize=3, markersize=7,
                            linestyle="none", **style[c["variant"]])
            handles.setdefault(c["variant"], h)
        ax.set(title=task, xscale="log", xlabel="trainable values used (log)", ylabel=f"test {axis_label(metric)}")
        if metric in PERCENT:
            percent_axis(ax, (chance or {}).get(task), highest=max(k * (c["test_mean"] + c["test_std"]) for c in mine))
            if (chance or {}).get(task) is not None:
                handles.setdefault("chance (1 / classes)", ax.lines[-1])
        ax.grid(alpha=0.3)
    shown = [v for v in [*variants, "chance (1 / classes)"] if v in handles]
    fig.legend([handles[v] for v in shown], shown,
               loc="lower center", ncol=min(4, len(handles)), fontsize=8, frameon=False)
    fig.suptitle(f"{title}\ntest metric vs trainable values (std over seeds)", fontsize=10)
    fig.tight_layout(rect=(0, 0.06 + 0.04 * ((len(handles) - 1) // 4), 1, 1))
    return save(fig, plots / "accuracy_vs_params.png", tight=False)
