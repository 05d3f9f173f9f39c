"""Parameter groups and freezing: which tensors train, chosen by group name.

A trunk's groups come from its hand map {group: [regex, ...]} over its own parameter names
(`re.fullmatch`, anchored, the way PEFT selects modules: GPT-2, BERT, T5, the baselines) or from its
structure (fpt/trunks/discover.py: any Hugging Face model). The model adds the `input` and
`output` groups. `emb` (the token-embedding table) is never trained: inputs go in through
`inputs_embeds`, so it gets no gradient and DDP would reject it as unused.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from collections.abc import Iterable, Mapping, Sequence

from fpt.config.groups import ALWAYS_FROZEN, GROUPS, NONE_WORDS, assign_groups, group_of, parse_freeze  # noqa: F401 - the vocabulary
from fpt.errors import FPTError

def apply_freeze(model, groups: Mapping[str, str], freeze: Sequence[str], absent: str = "error",
                 never: Iterable[str] = ()) -> None:
    """Set requires_grad from the frozen group names. A named group the model lacks is an error, or with
    absent="note" (trunks: `pos` on a rotary trunk) one note line. `never`: names frozen whatever the groups say."""
    present = set(groups.values())
    for g in freeze:
        if g in present:
            continue
        if absent == "note":
            print(f"note: freeze group '{g}' matches no parameter of this trunk; nothing to freeze there "
                  f"(its groups: {', '.join(sorted(present, key=_order))})", file=sys.stderr)
            continue
        raise FPTError(
            f"freeze group '{g}' matches no parameter of this model; its groups are: {', '.join(sorted(present, key=_order))}"
        )
    frozen, never = set(freeze) | set(ALWAYS_FROZEN), set(never)
    for name, p in model.named_parameters():
        p.requires_grad_(groups[name] not in frozen and name not in never)


def unfreeze_blocks(model, groups: Mapping[str, str], names: Sequence[str], last: int | None, blocks: str,
                    never: Iterable[str] = ()) -> list[str]:
    """Train `names` groups again inside the last `last` blocks (all blocks if None); returns what it unfroze."""
    pat = re.compile(rf"{re.escape(blocks)}\.(\d+)\.")
    index = {n: int(m.group(1)) for n in groups if (m := pat.match(n))}
    n_blocks = max(index.values()) + 1
    last = n_blocks if last is None else int(last)
    if not 1 <= last <= n_blocks:
        raise FPTError(f"unfreeze.last={last}: the trunk has {n_blocks} blocks; choose 1..{n_blocks}")
    never = set(never)
    chosen = [n for n, p in model.named_parameters()
              if groups[n] in names and index.get(n, -1) >= n_blocks - last and n not in never]
    if not chosen:
        raise FPTError(f"unfreeze.groups={list(names)} matches no parameter inside the transformer blocks")
    for n, p in model.named_parameters():
        if n in chosen:
            p.requires_grad_(True)
    return chosen


def _order(g: str) -> int:
    return GROUPS.index(g) if g in GROUPS else len(GROUPS)


@dataclass(frozen=True)
class ParamRow:
    """One line of `fpt inspect`: a parameter tensor's name, shape, freeze group and whether it trains."""

    name: str
    shape: tuple[int, ...]
    group: str
    trainable: bool


def inspect_rows(model, groups: Mapping[str, str] | None = None) -> list[ParamRow]:
    """One row per parameter tensor, in the model's order; `groups`: each name's group (default: model.param_groups())."""
    groups = model.param_groups() if groups is None else groups
    return [ParamRow(n, tuple(p.shape), groups[n], p.requires_grad) for n, p in model.named_parameters()]


def inspect_table(model, groups: Mapping[str, str]) -> str:
    """The trunk's description (what it is, how its groups were found: fpt.trunks.spec), then one line per tensor
    (name, shape, group, trainable/frozen: inspect_rows) and PEFT's summary line."""
    spec = getattr(model, "trunk_spec", None)
    rows = [(r.name, "x".join(map(str, r.shape)), r.group, "trainable" if r.trainable else "frozen")
            for r in inspect_rows(model, groups)]
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [*(spec.header() if spec is not None else []), *(f"{n:<{w[0]}}  {s:<{w[1]}}  {g:<{w[2]}}  {st}" for n, s, g, st in rows)]
    lines.append(summary_line(model))
    lines.append(used_line(model))
    return "\n".join(lines)


def used_line(model) -> str:
    """How many trainable values can change the output (see count_used), beside the trainable count."""
    trainable, total = count_params(model)
    used = count_used(model)
    return (f"used by this task {used:,} of {trainable:,} trainable || used% {100 * used / max(total, 1):.4f} "
            f"(position rows beyond the task's length, never-indexed table rows and key biases change no output)")


def summary_line(model) -> str:
    """`trainable X || all Y || trainable% Z`."""
    trainable, total = count_params(model)
    return f"trainable {trainable:,} || all {total:,} || trainable% {100 * trainable / max(total, 1):.4f}"


USED_TOL = 1e-12  # float64 leaves an analytically zero gradient below ~1e-16 of the largest; real ones sit far above


def count_used(model, tol: float = USED_TOL) -> int:
    """How many trainable values can change the output (see used_values)."""
    return int(sum(int(m.sum()) for m in used_values(model, tol).values()))


def used_values(model, tol: float = USED_TOL) -> dict:
    """{trainable parameter name: bool mask of its values that can change the output}: |gradient| > tol x the largest
    |gradient| for one full-length synthetic input (every position real, every token id present) under either of two
    random output weightings, on a float64 copy with jittered values (_probe_copy), so neither rounding nor the
    pretrained values decide: the same for every seed. Left out: position rows beyond the task's length, token-type
    rows never indexed, an input Embedding's padding row and key-projection biases (softmax ignores a shift shared by
    all keys: BERT's key.bias, the key slice of GPT-2's c_attn.bias)."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    used = {}
    for grads in (_probe_grads(_probe_copy(model), names) if names else []):
        top = max(float(g.abs().max()) for g in grads)
        for n, g in zip(names, grads):
            used[n] = (g.abs() > tol * top) | used.get(n, False)
    return used


def _probe_copy(model, jitter: float = 0.1):
    """A float64 copy in eval mode (no dropout: a dropped unit is not an unused one), computing eagerly without autocast
    whatever the original stores (a bf16 trunk: fpt/run/precision.py) or compiles. Every tensor gets noise of `jitter` x its
    RMS (0.02 where it is all zero): a value that is zero or vanishing now (LoRA's B, MiniLM's dead last-LayerNorm
    dimensions, ~1e-33) does not hide what it feeds, since training moves it; structural zeros stay exactly zero."""
    import copy

    import torch

    probe = copy.deepcopy(model).double().eval()
    for m in probe.modules():  # a compiled module's call still points at the original module: run the copy eagerly
        m.__dict__.pop("_compiled_call_impl", None)
    if hasattr(probe, "compute_dtype"):
        probe.compute_dtype = None
    gens = {}  # one seeded generator per device: the same jitter for every run of this model
    with torch.no_grad():
        for p in probe.parameters():
            if p.is_floating_point() and p.numel():
                if p.device not in gens:
                    gens[p.device] = torch.Generator(device=p.device).manual_seed(0)
                gen, scale = gens[p.device], jitter * float(p.square().mean().sqrt()) or 0.02
                p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype, device=p.device), alpha=scale)
    return probe


def _probe_grads(probe, names: Sequence[str], weightings: int = 2) -> list[list]:
    """One forward of the synthetic input, then the gradients of `names` for each random weighting of the outputs."""
    import torch

    spec, params = probe.spec, dict(probe.named_parameters())
    ps = [params[n] for n in names]
    device, gen = ps[0].device, torch.Generator().manual_seed(1)
    rows = 1 if spec.vocab_size is None else -(-spec.vocab_size // spec.seq_len)  # enough rows to show every id
    if spec.vocab_size is None:
        x = torch.randn(rows, spec.seq_len, spec.token_dim, generator=gen, dtype=torch.float64).to(device)
    else:
        x = (torch.arange(rows * spec.seq_len, device=device) % spec.vocab_size).view(rows, spec.seq_len)
    with torch.random.fork_rng(devices=[]), torch.enable_grad(), torch.autocast(device.type, enabled=False):
        out = probe(x, torch.ones(x.shape[:2], dtype=torch.bool, device=device))
        ws = [torch.randn(out.shape, generator=gen, dtype=out.dtype).to(device) for _ in range(weightings)]
        grads = [torch.autograd.grad((out * w).sum(), ps, allow_unused=True, retain_graph=True) for w in ws]
    return [[torch.zeros_like(p) if g is None else g for g, p in zip(gs, ps)] for gs in grads]


def count_params(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = trainable = 0
    for p in model.parameters():
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total
