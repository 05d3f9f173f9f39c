"""Weight statistics of a trunk as `trunk=...` builds it (pretrained, random, standardized, a run's).

Per tensor: mean, std, min, max, L2 (Frobenius) norm, the norm per element (||W||_F / numel) and the
root mean square (||W||_F / sqrt(numel), comparable to std), and for 2-D tensors the std Xavier-normal
init would give that shape and the ratio std / xavier_std. Every tensor is tagged with its freeze
group (the trunk's hand map, or the groups found from its structure).

With trunk.init=standardized or trunk.keep, `*_ranges.csv` (and a printed table) gives, for every tensor of the
standardised / kept groups, its std and max |value| in the pretrained trunk (before) and as built (after).

The embedding-to-position scale ratio (token-embedding table vs position table, by std and by mean
row norm) says how much the position signal is drowned when both are added at the input: the
reason behind `trunk.init=standardized`. It is undefined for T5 and DeBERTa, whose positions are an
attention bias, and for rotary trunks, which have no table.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch

from fpt.analysis import slug, trunk_name, write_csv
from fpt.errors import FPTError
from fpt.plots import pyplot, save


def tensor_stats(name: str, group: str, p: torch.Tensor) -> dict:
    """One CSV row of statistics for one parameter tensor."""
    from fpt.trunks.init import xavier_std

    v = p.detach().double()
    norm = float(v.norm())
    std = float(v.std()) if v.numel() > 1 else 0.0
    xavier = xavier_std(v.shape) if v.dim() == 2 else None
    return dict(
        name=name, group=group, shape="x".join(map(str, v.shape)), numel=v.numel(),
        mean=float(v.mean()), std=std, min=float(v.min()), max=float(v.max()),
        l2=norm, fro_per_elem=norm / v.numel(), rms=norm / math.sqrt(v.numel()),
        xavier_std=xavier, std_over_xavier=std / xavier if xavier else None,
    )


def weight_table(trunk: torch.nn.Module, groups: dict[str, str]) -> list[dict]:
    """One row per parameter tensor of the trunk."""
    return [tensor_stats(name, groups[name], p) for name, p in trunk.named_parameters()]


def _row_norm(p: torch.Tensor) -> float:
    return float(p.detach().double().norm(dim=1).mean())


def embedding_scale(trunk: torch.nn.Module, groups: dict[str, str], hidden: int) -> dict:
    """Token-embedding vs position-table scale: std and mean row norm of each, and their ratios."""
    params = dict(trunk.named_parameters())
    emb = [n for n, g in groups.items() if g == "emb" and params[n].dim() == 2]
    # the added position table: a `pos` tensor of width `hidden` with the most rows (BERT's token-type table has 2)
    pos = sorted((n for n, g in groups.items() if g == "pos" and params[n].dim() == 2 and params[n].shape[1] == hidden),
                 key=lambda n: -params[n].shape[0])
    if not emb or not pos:
        return {"token_embedding": emb[0] if emb else None, "position": None, "note": "no added position table (e.g. T5's relative bias)"}
    e, p = params[emb[0]].detach().double(), params[pos[0]].detach().double()
    out = {"token_embedding": emb[0], "position": pos[0], "emb_std": float(e.std()), "pos_std": float(p.std()),
           "emb_row_norm": _row_norm(e), "pos_row_norm": _row_norm(p)}
    out["ratio_std"] = out["emb_std"] / out["pos_std"]
    out["ratio_row_norm"] = out["emb_row_norm"] / out["pos_row_norm"]
    return out


GROUP_COLOURS = {"attn": "tab:blue", "ffn": "tab:orange", "ln": "tab:green", "pos": "tab:red", "emb": "tab:purple"}


def plot_weights(rows: list[dict], label: str, path: Path) -> Path:
    """Std per tensor by group against the Xavier std of its shape (top), and their ratio for matrices (bottom)."""
    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(7.0, 0.07 * len(rows) + 3), 6.4), sharex=True, height_ratios=[3, 2])
    for group, colour in GROUP_COLOURS.items():
        mats = [i for i, r in enumerate(rows) if r["group"] == group and r["xavier_std"]]
        vecs = [i for i, r in enumerate(rows) if r["group"] == group and not r["xavier_std"] and r["std"] > 0]
        top.scatter(mats, [rows[i]["std"] for i in mats], s=18, color=colour, label=group)
        top.scatter(vecs, [rows[i]["std"] for i in vecs], s=14, facecolors="none", edgecolors=colour)
        bottom.scatter(mats, [rows[i]["std_over_xavier"] for i in mats], s=18, color=colour)
    xi = [i for i, r in enumerate(rows) if r["xavier_std"]]
    top.scatter(xi, [rows[i]["xavier_std"] for i in xi], s=40, marker="_", color="k", label="Xavier std of the shape")
    top.set_yscale("log")
    top.set_ylabel("std of the values\n(hollow: biases, norm weights)")
    constant = sum(r["std"] == 0 for r in rows)  # fresh biases (0) and norm weights (1): no point on a log axis
    top.set_title(label + (f"  ({constant} constant tensors, std 0, not shown)" if constant else ""), fontsize=9)
    top.legend(fontsize=7, ncol=3)
    bottom.axhline(1.0, ls="--", color="k", lw=0.8)
    bottom.set_yscale("log")
    bottom.yaxis.set_major_formatter("{x:.2g}")
    bottom.yaxis.set_minor_formatter("{x:.2g}")
    bottom.set_ylabel("std / Xavier std\n(matrices)")
    ticks = layer_ticks(rows)
    bottom.set_xticks(list(ticks), list(ticks.values()), rotation=90, fontsize=6)
    for i in ticks:
        top.axvline(i - 0.5, color="0.9", lw=0.6, zorder=0)
    bottom.set_xlabel("trunk tensors in parameter order, by block and group")
    return save(fig, path, dpi=100)


def layer_name(name: str, group: str) -> str:
    """A tensor's place for a reader: 'block 3 attn' (its block and freeze group), or 'pos wpe' outside the blocks."""
    block = re.search(r"(?:^|\.)(\d+)\.", name)
    if block:
        return f"block {block.group(1)} {group}"
    return f"{group} {name.rsplit('.', 1)[0].split('.')[-1]}"


def layer_ticks(rows: list[dict]) -> dict[int, str]:
    """{index of the first tensor of each run of tensors with the same layer name: that name}."""
    ticks, last = {}, None
    for i, r in enumerate(rows):
        label = layer_name(r["name"], r["group"])
        if label != last:
            ticks[i], last = label, label
    return ticks


def trunk_from_overrides(overrides: list[str]):
    """(trunk config, fpt.trunks.Trunk) for `trunk=... trunk.KEY=...` overrides, as `fpt train` would build it."""
    import fpt.models  # noqa: F401 - registers the model kinds: trunk.init=RUN reads that run's model.kind
    from fpt.config import check_groups, compose, rewrite
    from fpt.trunks import build_trunk
    from fpt.trunks.source import check_source

    bad = [o for o in overrides if not o.lstrip("+~").startswith("trunk")]
    if bad:
        raise FPTError(f"weights takes trunk=NAME and trunk.KEY=VALUE options (and out=DIR), not '{bad[0]}'")
    check_groups(overrides)
    cfg = compose(rewrite(overrides)).trunk
    check_source(cfg)
    built = build_trunk(cfg)
    built.model.eval()
    return cfg, built


def touched_groups(cfg) -> list[str]:
    """The groups trunk.init=standardized rescales (trunk.standardize) or trunk.keep copies from the pretrained trunk."""
    if str(cfg.init) == "standardized":
        return [g for g in cfg.get("standardize") or ["pos"] if g != "input"]
    return list(cfg.get("keep") or [])


RESET = ("trunk.init", "trunk.keep", "trunk.standardize_kept")


def range_table(overrides: list[str], after: torch.nn.Module, groups: dict[str, str], touched: list[str]) -> list[dict]:
    """Std and max |value| of every tensor of the `touched` groups in the pretrained trunk (before) and as built (after)."""
    from fpt.trunks.init import xavier_std

    base = [o for o in overrides if o.partition("=")[0].lstrip("+~") not in RESET]
    before = dict(trunk_from_overrides([*base, "trunk.init=pretrained"])[1].model.named_parameters())
    rows = []
    for name, p in after.named_parameters():
        if groups.get(name) in touched:
            b, a = before[name].detach().double(), p.detach().double()
            rows.append(dict(name=name, group=groups[name], shape="x".join(map(str, a.shape)),
                             xavier_std=xavier_std(a.shape) if a.dim() == 2 else None,
                             std_before=float(b.std()), std_after=float(a.std()),
                             max_abs_before=float(b.abs().max()), max_abs_after=float(a.abs().max())))
    return rows


def format_ranges(rows: list[dict]) -> str:
    """The range table as printed: one line per tensor of the kept / standardised groups."""
    head = f"{'tensor':<40} {'xavier':>8} {'std before':>11} {'std after':>10} {'max|w| before':>14} {'max|w| after':>13}"
    lines = [head] + [f"{r['name']:<40} {r['xavier_std'] or float('nan'):>8.4f} {r['std_before']:>11.4f} {r['std_after']:>10.4f} "
                      f"{r['max_abs_before']:>14.4f} {r['max_abs_after']:>13.4f}" for r in rows]
    return "\n".join(lines)


def analyze_weights(overrides: list[str], out: str | None = None) -> tuple[list[Path], dict]:
    """CSV, plot and scale JSON of a trunk's weights; returns the files and the embedding scale."""
    cfg, built = trunk_from_overrides(overrides)
    trunk, groups = built.model, built.groups
    rows = weight_table(trunk, groups)
    label = f"{trunk_name(cfg)} {cfg.init}" + (f" [{','.join(cfg.standardize)}]" if str(cfg.init) == "standardized" else "")
    scale = {"trunk": label, **embedding_scale(trunk, groups, built.spec.input_width)}
    out_dir = Path(out).expanduser() if out else Path("analysis")
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"weights_{slug(f'{trunk_name(cfg)}_{Path(str(cfg.init)).name}')}"
    (out_dir / f"{stem}_scale.json").write_text(json.dumps(scale, indent=2) + "\n")
    files = [write_csv(out_dir / f"{stem}.csv", rows), plot_weights(rows, label, out_dir / f"{stem}.png"), out_dir / f"{stem}_scale.json"]
    touched = touched_groups(cfg)
    if touched:  # trunk.standardize / trunk.keep: each touched tensor's range in the pretrained trunk and as built
        ranges = range_table(overrides, trunk, groups, touched)
        scale["ranges"] = format_ranges(ranges)
        files.append(write_csv(out_dir / f"{stem}_ranges.csv", ranges))
    return files, scale
