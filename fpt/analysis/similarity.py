"""What each layer's representation holds: compared across models (CKA, RSA) and probed for the task.

Features of a layer, per example (examples x features):
- `pool=mean` (default): the hidden states mean-pooled over the example's real tokens, (b, h);
- `pool=flat`: all token positions concatenated, (b, t*h), padding zeroed. Keeps *where* a feature
  sits, which matters for per-position tasks such as bit XOR, at t times the width.
Layer 0 is the trunk's embedding output (inputs + positions, the input of block 0); layer i is the
output of block i (the last one after the trunk's final norm, as Hugging Face returns it).

Both models see the SAME inputs: the test examples of run a's task, each through its own model's
input layer; a bare trunk (`b=trunk` or `b=trunk:NAME`) gets run a's input layer.

- linear CKA (Kornblith et al. 2019): for centred X (b, p) and Y (b, q),
  ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F), computed on the (b, b) Gram matrices (p, q may be large).
  1 for the same representation; invariant to orthogonal maps and isotropic scaling.
- RSA: Spearman correlation of the upper triangles of the two representational dissimilarity
  matrices, RDM = 1 - Pearson correlation between examples.
- probes: a logistic regression per target on each layer's features, fitted on the val set and
  scored on the test set: where the task's information becomes linearly readable.

Axes: b examples, t tokens, h hidden size, l layers.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from einops import rearrange, reduce

from fpt.config.kinds import freeze_of
from fpt.analysis import examples, open_run, require_transformer, slug, trunk_name, trunk_outputs, write_csv
from fpt.errors import FPTError
from fpt.plots import pyplot, save
from fpt.run.results import Results

POOLS = ("mean", "flat")


# --- features ------------------------------------------------------------------------------------------
def pool_layer(h: torch.Tensor, mask: torch.Tensor, pool: str) -> torch.Tensor:
    """(b, t, h) hidden states -> (b, f) features: mean over real tokens, or all positions flattened."""
    m = rearrange(mask.to(h.dtype), "b t -> b t 1")
    if pool == "mean":
        return reduce(h * m, "b t h -> b h", "sum") / reduce(m, "b t 1 -> b 1", "sum").clamp_min(1)
    if pool == "flat":
        return rearrange(h * m, "b t h -> b (t h)")
    raise FPTError(f"unknown pool '{pool}'; choose one of: {', '.join(POOLS)}")


@torch.no_grad()
def layer_features(trunk, embed, x: torch.Tensor, mask: torch.Tensor, pool: str = "mean", chunk: int = 64,
                   forward: str = "embeds") -> list[torch.Tensor]:
    """Per layer (embeddings, then every block) pooled features (b, f) of `trunk` on `embed(x)`
    (`forward`: the trunk's TrunkSpec.forward)."""
    chunks = []
    for i in range(0, x.shape[0], chunk):  # pooled at once: all layers' (b, t, h) states would not fit for long tasks
        m = mask[i : i + chunk]
        out = trunk_outputs(trunk, embed(x[i : i + chunk]), m, forward=forward)
        chunks.append([pool_layer(h.float(), m, pool) for h in out.hidden_states])
    return [torch.cat([c[layer] for c in chunks]) for layer in range(len(chunks[0]))]


# --- CKA and RSA ---------------------------------------------------------------------------------------
def _gram(x: torch.Tensor) -> torch.Tensor:
    """Gram matrix (b, b) of the centred features (b, f), in float64 for a stable ratio."""
    x = x.double()
    x = x - x.mean(0, keepdim=True)
    return x @ x.T


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two representations of the same examples, (b, p) and (b, q)."""
    gx, gy = _gram(x), _gram(y)  # K and L
    # trace(K L) = ||Y^T X||_F^2 and ||K||_F = ||X^T X||_F for centred X, Y
    denom = float(gx.norm() * gy.norm())
    return float((gx * gy).sum()) / denom if denom > 0 else float("nan")


def rdm(x: torch.Tensor) -> torch.Tensor:
    """Representational dissimilarity matrix (b, b): 1 - Pearson correlation between examples."""
    x = x.double()
    x = x - x.mean(1, keepdim=True)
    x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)  # a constant example has no correlation: row of zeros
    return 1 - x @ x.T


def rsa(x: torch.Tensor, y: torch.Tensor) -> float:
    """Spearman correlation between the upper triangles of the two RDMs."""
    from scipy.stats import spearmanr

    i, j = torch.triu_indices(x.shape[0], x.shape[0], offset=1)
    return float(spearmanr(rdm(x)[i, j].numpy(), rdm(y)[i, j].numpy()).statistic)


def similarity_rows(fa: list[torch.Tensor], fb: list[torch.Tensor]) -> list[dict]:
    """CKA and RSA of every layer of a against every layer of b."""
    return [dict(layer_a=i, layer_b=j, cka=linear_cka(a, b), rsa=rsa(a, b)) for i, a in enumerate(fa) for j, b in enumerate(fb)]


def plot_similarity(rows: list[dict], label_a: str, label_b: str, path: Path) -> Path:
    """CKA and RSA heatmaps side by side: layers of a (rows) x layers of b (columns), values written in."""
    plt = pyplot()
    na, nb = 1 + max(r["layer_a"] for r in rows), 1 + max(r["layer_b"] for r in rows)
    fig, axes = plt.subplots(1, 2, figsize=(2 * (0.55 * nb + 1.8), 0.55 * na + 1.6))
    for ax, key in zip(axes, ("cka", "rsa")):
        grid = torch.tensor([r[key] for r in rows]).reshape(na, nb)
        im = ax.imshow(grid.numpy(), vmin=0 if key == "cka" else -1, vmax=1, cmap="magma" if key == "cka" else "RdBu_r")
        if na * nb <= 400:  # numbers stay legible up to about 20 x 20 cells
            for i in range(na):
                for j in range(nb):
                    v = float(grid[i, j])
                    dark = v < 0.5 if key == "cka" else abs(v) > 0.6  # the cell's colour under magma / RdBu
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w" if dark else "k")
        ax.set_title({"cka": "linear CKA", "rsa": "RSA (Spearman of RDMs)"}[key], fontsize=9)
        ax.set_xlabel(f"layer of b: {label_b}", fontsize=7)
        ax.set_ylabel(f"layer of a: {label_a}", fontsize=7)
        ax.set_xticks(range(nb))
        ax.set_yticks(range(na))
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(f"a = {label_a.split(' (')[0]}  vs  b = {label_b.split(' (')[0]}  (layer 0: the embeddings)", fontsize=9)
    return save(fig, path, dpi=110)


def _side_b(b: str, a, trunk_overrides: list[str]):
    """(trunk, embed, label, file tag, forward) for b: a run's trunk and input layer, or a bare trunk fed a's input layer."""
    if b == "trunk" or b.startswith("trunk:"):
        from omegaconf import OmegaConf

        import fpt.models  # noqa: F401 - registers the model kinds: trunk.init=RUN reads that run's model.kind
        from fpt.config import check_groups, compose, rewrite
        from fpt.trunks import build_trunk

        if b == "trunk":  # run a's own trunk config, freshly loaded: what a looked like before training
            if any(not o.startswith("trunk.") for o in trunk_overrides):
                raise FPTError("b=trunk takes trunk.KEY=VALUE options; to load another trunk write b=trunk:NAME")
            tcfg = OmegaConf.merge(a.cfg.trunk, OmegaConf.from_dotlist([o.removeprefix("trunk.") for o in trunk_overrides]))
        else:
            overrides = rewrite([f"trunk={b.split(':', 1)[1]}", *trunk_overrides])
            check_groups(overrides)
            tcfg = compose(overrides).trunk
        built = build_trunk(tcfg)
        width = a.model.input.embedding_dim if isinstance(a.model.input, torch.nn.Embedding) else a.model.input.out_features
        if built.spec.input_width != width:
            raise FPTError(f"trunk {trunk_name(tcfg)} takes inputs of width {built.spec.input_width}, but run a's input layer gives {width}")
        return (built.model.eval(), a.model.input, f"trunk {trunk_name(tcfg)} ({tcfg.init})",
                f"trunk_{trunk_name(tcfg)}_{Path(str(tcfg.init)).name}", built.spec.forward)
    if trunk_overrides:
        raise FPTError("trunk.* options apply to b=trunk or b=trunk:NAME, not to a run directory")
    rb = open_run(b)
    require_transformer(rb.model, "similarity")
    sa, sb = a.model.spec, rb.model.spec
    if (sa.token_dim, sa.vocab_size) != (sb.token_dim, sb.vocab_size):
        raise FPTError(f"run b ({rb.cfg.task.name}) cannot read run a's inputs ({a.cfg.task.name}): tokens of different dimension or vocabulary")
    return rb.model.trunk, rb.model.input, _label(rb), rb.path.name, rb.model.trunk_spec.forward


def _label(r) -> str:
    """A short name for a run: its directory, trunk, init and frozen groups."""
    return f"{r.path.name} ({trunk_name(r.cfg.trunk)} {r.cfg.trunk.init}, freeze={','.join(freeze_of(r.cfg)) or 'none'})"


def analyze_similarity(a: str, b: str, n: int = 512, pool: str = "mean", trunk_overrides: list[str] | None = None, out: str | None = None) -> list[Path]:
    """Layer-by-layer CKA and RSA between run a and run b (or a trunk) on run a's test examples: CSV + heatmap."""
    pool_layer(torch.zeros(1, 1, 1), torch.ones(1, 1, dtype=torch.bool), pool)  # an unknown pool fails before any loading
    ra = open_run(a)
    require_transformer(ra.model, "similarity")
    trunk_b, embed_b, label_b, tag, forward_b = _side_b(str(b), ra, list(trunk_overrides or []))
    batch = examples(ra.task, "test", n)
    fa = layer_features(ra.model.trunk, ra.model.input, batch["x"], batch["mask"], pool, forward=ra.model.trunk_spec.forward)
    fb = layer_features(trunk_b, embed_b, batch["x"], batch["mask"], pool, forward=forward_b)
    rows = similarity_rows(fa, fb)
    out_dir = Path(out).expanduser() if out else ra.path / "analysis"
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"a": _label(ra), "b": label_b, "examples": int(batch["x"].shape[0]), "pool": pool}
    stem = f"similarity_{slug(tag)}_{pool}"  # one set of files per (b, pool): several comparisons share a folder
    (out_dir / f"{stem}.json").write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")
    return [write_csv(out_dir / f"{stem}.csv", rows), plot_similarity(rows, meta["a"], label_b, out_dir / f"{stem}.png"), out_dir / f"{stem}.json"]


# --- linear probes -------------------------------------------------------------------------------------
def probe_accuracy(f_train: torch.Tensor, y_train: torch.Tensor, f_test: torch.Tensor, y_test: torch.Tensor) -> float:
    """Test accuracy of a logistic regression on standardised features (one target column)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if y_train.unique().numel() < 2:  # one class only: the probe can only predict it
        return float((y_test == y_train[0]).float().mean())
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probe.fit(f_train.numpy(), y_train.numpy())
    return float(probe.score(f_test.numpy(), y_test.numpy()))


def majority_rate(y_train: torch.Tensor, y_test: torch.Tensor) -> float:
    """Chance level: accuracy of always predicting the training set's most frequent class."""
    return float((y_test == y_train.mode().values).float().mean())


def probe_rows(f_train: list[torch.Tensor], y_train: torch.Tensor, f_test: list[torch.Tensor], y_test: torch.Tensor, targets: int) -> list[dict]:
    """Per layer: mean probe accuracy over the first `targets` target columns, and the chance level."""
    cols = range(min(targets, y_train.shape[1]))
    rows = []
    for layer, (a, b) in enumerate(zip(f_train, f_test)):
        acc = [probe_accuracy(a, y_train[:, c], b, y_test[:, c]) for c in cols]
        chance = [majority_rate(y_train[:, c], y_test[:, c]) for c in cols]
        rows.append(dict(layer=layer, probe_acc=sum(acc) / len(acc), chance=sum(chance) / len(chance), targets=len(acc)))
    return rows


def plot_probe(rows: list[dict], label: str, model_acc: float | None, path: Path) -> Path:
    """Probe accuracy per layer against chance and the trained model's own test accuracy, on the 0-100% scale of
    every accuracy plot."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    layers = [r["layer"] for r in rows]
    ax.plot(layers, [100 * r["probe_acc"] for r in rows], "o-", label="linear probe (fit on val, scored on test)")
    ax.plot(layers, [100 * r["chance"] for r in rows], ":", color="gray", label="chance (majority class)")
    if model_acc is not None:
        ax.axhline(100 * model_acc, ls="--", lw=1, color="k", label=f"the model's test acc ({100 * model_acc:.1f}%)")
    ax.set_xticks(layers, ["emb" if i == 0 else f"block {i - 1}" for i in layers])
    ax.set_xlabel("features after (emb: the embeddings)")
    ax.set_ylabel(f"accuracy (%), mean of {rows[0]['targets']} target{'s' if rows[0]['targets'] > 1 else ''}")
    ax.set_ylim(0, 100)
    ax.set_title(f"probes: {label}", fontsize=8)
    ax.legend(fontsize=7)
    return save(fig, path, dpi=110)


def analyze_probe(run: str, n: int = 1000, pool: str = "mean", targets: int = 8, out: str | None = None) -> list[Path]:
    """Linear probes on every layer's features: fitted on the val set, scored on the test set."""
    pool_layer(torch.zeros(1, 1, 1), torch.ones(1, 1, dtype=torch.bool), pool)
    r = open_run(run)
    require_transformer(r.model, "probing")
    val, test = examples(r.task, "val", n), examples(r.task, "test", n)
    fwd = r.model.trunk_spec.forward
    f_val = layer_features(r.model.trunk, r.model.input, val["x"], val["mask"], pool, forward=fwd)
    f_test = layer_features(r.model.trunk, r.model.input, test["x"], test["mask"], pool, forward=fwd)
    rows = probe_rows(f_val, val["y"], f_test, test["y"], targets)
    out_dir = Path(out).expanduser() if out else r.path / "analysis"
    out_dir.mkdir(parents=True, exist_ok=True)
    recorded = Results.read(r.path)
    model_acc = recorded.scores.get("test/acc") if recorded else None
    return [write_csv(out_dir / f"probe_{pool}.csv", rows), plot_probe(rows, f"{_label(r)}, pool={pool}", model_acc, out_dir / f"probe_{pool}.png")]
