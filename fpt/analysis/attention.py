"""Attention maps of a trained run: PNG grids (layers x heads) per example, entropy and distance per head.

The default `sdpa` kernel never materialises the attention weights (`output_attentions=True` then
returns nothing), so the trunk is switched to eager attention first: same weights, same outputs.

Statistics, per head, averaged over real query positions i of the examples (padding excluded):
- entropy  H_i = -sum_j a_ij log a_ij  (0: one key; log K: uniform over K allowed keys)
- distance D_i = sum_j a_ij |i - j|    (tokens; how far a query looks)
`uniform_entropy` is the entropy a head would have if it spread evenly over the keys it may see
(real keys, and for a causal trunk only those up to i, as the trunk's TrunkSpec says): the ceiling for that row.

Axes: b examples, n heads, q query positions, k key positions.
"""

from __future__ import annotations

from pathlib import Path

import torch
from einops import rearrange, reduce

from fpt.analysis import examples, open_run, parse_indices, require_transformer, trunk_outputs, write_csv
from fpt.errors import FPTError
from fpt.plots import pyplot, save

COLUMNS = 6  # heads per row of a grid; more wrap onto the next row


@torch.no_grad()
def attention_maps(model, x: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
    """Per layer (b, n, q, k) attention weights of an FPTModel's trunk, under forced eager attention."""
    require_transformer(model, "attention analysis")
    trunk = model.trunk
    if trunk.config._attn_implementation != "eager":
        trunk.set_attn_implementation("eager")
    out = trunk_outputs(trunk, model.input(x), mask, attentions=True, forward=model.trunk_spec.forward)
    maps = list(out.attentions or ())
    if not maps or any(a is None for a in maps):
        raise FPTError(f"the {type(trunk).__name__} trunk returned no attention maps even with eager attention")
    if any(a.shape[-1] != a.shape[-2] for a in maps):  # Longformer: (b, n, t, window) weights per sliding window
        raise FPTError(f"the {type(trunk).__name__} trunk's attention weights are per sliding window, not (query, key) maps")
    return [a.float() for a in maps]


def _masked_mean(v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(b, n, q) values averaged over the real queries of every example -> (n,)."""
    m = rearrange(mask.to(v.dtype), "b q -> b 1 q")
    return reduce(v * m, "b n q -> n", "sum") / reduce(m, "b 1 q -> 1", "sum").clamp_min(1)


def row_entropy(a: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of every attention row: (b, n, q, k) -> (b, n, q)."""
    return -(a * a.clamp_min(1e-30).log()).sum(-1)  # masked keys have a = 0 and add 0


def row_distance(a: torch.Tensor) -> torch.Tensor:
    """sum_j a_ij |i - j| of every attention row: (b, n, q, k) -> (b, n, q)."""
    pos = torch.arange(a.shape[-1], dtype=a.dtype, device=a.device)
    return (a * (pos[:, None] - pos[None, :]).abs()).sum(-1)


def attention_entropy(a: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean row entropy per head over real queries: (b, n, q, k) weights, (b, q) mask -> (n,)."""
    return _masked_mean(row_entropy(a), mask)


def attention_distance(a: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean attention distance per head over real queries: -> (n,)."""
    return _masked_mean(row_distance(a), mask)


def uniform_entropy(mask: torch.Tensor, causal: bool) -> float:
    """Mean over real queries of log(number of keys the query may attend to)."""
    keys = mask.sum(1, keepdim=True).expand_as(mask).float()  # (b, q): real keys per example
    if causal:
        keys = torch.minimum(keys, torch.arange(1, mask.shape[1] + 1, dtype=torch.float32))
    m = mask.float()
    return float((keys.clamp_min(1).log() * m).sum() / m.sum().clamp_min(1))


def attention_stats(model, x: torch.Tensor, mask: torch.Tensor, causal: bool, chunk: int = 16) -> list[dict]:
    """CSV rows: per layer one row per head plus a `head=mean` row; maps computed `chunk` examples at a time."""
    ent, dist = [], []  # per chunk, per layer: (b, n, q) row values; the (q, k) maps are dropped at once
    for i in range(0, x.shape[0], chunk):
        maps = attention_maps(model, x[i : i + chunk], mask[i : i + chunk])
        ent.append([row_entropy(a) for a in maps])
        dist.append([row_distance(a) for a in maps])
    ceiling = uniform_entropy(mask, causal)
    rows = []
    for layer in range(len(ent[0])):
        e = _masked_mean(torch.cat([c[layer] for c in ent]), mask)
        d = _masked_mean(torch.cat([c[layer] for c in dist]), mask)
        for head in range(e.shape[0]):
            rows.append(dict(layer=layer, head=head, entropy=float(e[head]), uniform_entropy=ceiling, distance=float(d[head])))
        rows.append(dict(layer=layer, head="mean", entropy=float(e.mean()), uniform_entropy=ceiling, distance=float(d.mean())))
    return rows


def _tick_labels(x: torch.Tensor, length: int) -> list[str]:
    """position:value when a token is one id or one number (vocabularies, bit tasks), else positions."""
    if x.dim() == 1:  # token ids
        return [f"{i}:{int(v)}" for i, v in enumerate(x[:length])]
    if x.shape[-1] == 1:  # one number per token
        return [f"{i}:{float(v):+g}" for i, v in enumerate(x[:length, 0])]
    return [str(i) for i in range(length)]


def plot_grid(maps: list[torch.Tensor], ex: int, layers: list[int], heads: list[int], x: torch.Tensor, length: int, path: Path,
              title: str = "") -> Path:
    """One example's maps, real tokens only: a panel per (layer, head), a layer's heads wrapped at COLUMNS."""
    plt = pyplot()
    cols = min(len(heads), COLUMNS)
    per_layer = -(-len(heads) // cols)  # rows one layer's heads take
    fig, axes = plt.subplots(len(layers) * per_layer, cols, figsize=(2.3 * cols + 1.2, 2.3 * len(layers) * per_layer + 0.4),
                             squeeze=False, layout="constrained")
    labels = _tick_labels(x, length) if length <= 32 else None
    for ax in axes.flat:
        ax.set_axis_off()
    for r, layer in enumerate(layers):
        for k, head in enumerate(heads):
            ax = axes[r * per_layer + k // cols][k % cols]
            ax.set_axis_on()
            im = ax.imshow(maps[layer][ex, head, :length, :length].numpy(), vmin=0, vmax=1, cmap="viridis")
            ax.set_title(f"layer {layer} head {head}", fontsize=8)
            ax.set_xticks([]) if labels is None else ax.set_xticks(range(length), labels, rotation=90, fontsize=6)
            ax.set_yticks([]) if labels is None else ax.set_yticks(range(length), labels, fontsize=6)
    fig.supxlabel("key (position:value)" if labels else "key position", fontsize=9)
    fig.supylabel("query (position:value)" if labels else "query position", fontsize=9)
    fig.colorbar(im, ax=axes, shrink=0.5, label="attention weight")
    fig.suptitle(f"{title}: attention of test example {ex}" if title else f"attention of test example {ex}", fontsize=9)
    return save(fig, path, dpi=100, tight=False)


def plot_stats(rows: list[dict], path: Path, title: str = "") -> Path:
    """Entropy and distance per layer: each head a dot, the mean over heads a line."""
    plt = pyplot()
    fig, (ax_e, ax_d) = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key, label in ((ax_e, "entropy", "attention entropy (nats)"), (ax_d, "distance", "mean attention distance (tokens)")):
        heads = [r for r in rows if r["head"] != "mean"]
        means = [r for r in rows if r["head"] == "mean"]
        ax.scatter([r["layer"] for r in heads], [r[key] for r in heads], s=10, alpha=0.5, label="one head")
        ax.plot([r["layer"] for r in means], [r[key] for r in means], "o-", color="k", label="mean over heads")
        if key == "entropy":
            ax.axhline(means[0]["uniform_entropy"], ls="--", color="gray", label="uniform over allowed keys")
        ax.set_xticks([r["layer"] for r in means])
        ax.set_xlabel("layer")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    fig.suptitle(f"{title}: attention per layer and head" if title else "attention per layer and head", fontsize=9)
    return save(fig, path, dpi=110)


def analyze_attention(run: str, layers=None, heads=None, n_examples: int = 4, n_stats: int = 64, out: str | None = None) -> list[Path]:
    """Attention grids for the first test examples, and a CSV + plot of entropy and distance per head."""
    r = open_run(run)
    require_transformer(r.model, "attention analysis")
    batch = examples(r.task, "test", max(n_examples, n_stats))
    maps = attention_maps(r.model, batch["x"][:n_examples], batch["mask"][:n_examples])
    layer_ids = parse_indices(layers if layers is not None else [0, len(maps) - 1], len(maps), "layers")
    head_ids = parse_indices(heads, maps[0].shape[1], "heads")
    out_dir = Path(out).expanduser() if out else r.path / "analysis"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for ex in range(maps[0].shape[0]):
        length = int(batch["mask"][ex].sum())
        written.append(plot_grid(maps, ex, layer_ids, head_ids, batch["x"][ex], length, out_dir / f"attention_ex{ex}.png", r.path.name))
    rows = attention_stats(r.model, batch["x"], batch["mask"], r.model.trunk_spec.causal)
    written.append(write_csv(out_dir / "attention_stats.csv", rows))
    written.append(plot_stats(rows, out_dir / "attention_stats.png", r.path.name))
    return written
