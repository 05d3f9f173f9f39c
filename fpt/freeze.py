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
from collections.abc import Iterable, Mapping, Sequence

from fpt.errors import FPTError

# Order matters only for display.
# rnn: the LSTM baseline's layers; adapter: PEFT's tensors and bias: BitFit's (peft.method, fpt/adapters.py)
GROUPS = ("attn", "ffn", "ln", "pos", "emb", "input", "output", "rnn", "adapter", "bias")
ALWAYS_FROZEN = ("emb",)
NONE_WORDS = ("none", "nothing", "")


def parse_freeze(freeze: str | Sequence[str] | None, known: Iterable[str] = GROUPS) -> list[str]:
    """Normalise `freeze=` (a list, 'a,b' or 'none') and reject unknown group names."""
    if freeze is None:
        return []
    items = freeze.split(",") if isinstance(freeze, str) else [str(f) for f in freeze]
    items = [i.strip() for i in items]
    if len(items) == 1 and items[0].lower() in NONE_WORDS:
        return []
    known = tuple(known)
    for item in items:
        if item not in known:
            raise FPTError(f"unknown freeze group '{item}'; known groups: {', '.join(known)} (or 'none')")
    return list(dict.fromkeys(items))


def group_of(name: str, group_map: Mapping[str, Sequence[str]]) -> str | None:
    """The group whose pattern fully matches `name`, or None."""
    for group, patterns in group_map.items():
        if any(re.fullmatch(p, name) for p in patterns):
            return group
    return None


def assign_groups(names: Iterable[str], group_map: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Map every parameter name to its group; a name no pattern claims is a bug in the map."""
    out: dict[str, str] = {}
    for name in names:
        group = group_of(name, group_map)
        if group is None:
            raise FPTError(f"parameter '{name}' belongs to no freeze group; the trunk's group map needs a pattern for it")
        out[name] = group
    return out


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


def inspect_table(model, groups: Mapping[str, str]) -> str:
    """The trunk's description (what it is, how its groups were found: fpt.trunks.spec), then one line per tensor
    (name, shape, group, trainable/frozen) and PEFT's summary line."""
    spec = getattr(model, "trunk_spec", None)
    rows = []
    for name, p in model.named_parameters():
        state = "trainable" if p.requires_grad else "frozen"
        rows.append((name, "x".join(map(str, p.shape)), groups[name], state))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [*(spec.header() if spec is not None else []), *(f"{n:<{w[0]}}  {s:<{w[1]}}  {g:<{w[2]}}  {st}" for n, s, g, st in rows)]
    lines.append(summary_line(model))
    lines.append(used_line(model))
    return "\n".join(lines)


def used_line(model) -> str:
    """How many trainable values the task can reach (see count_used), beside the trainable count."""
    trainable, total = count_params(model)
    used = count_used(model)
    return (f"used by this task {used:,} of {trainable:,} trainable || used% {100 * used / max(total, 1):.4f} "
            f"(position rows beyond the task's length and never-indexed table rows get no gradient)")


def summary_line(model) -> str:
    """`trainable X || all Y || trainable% Z`."""
    trainable, total = count_params(model)
    return f"trainable {trainable:,} || all {total:,} || trainable% {100 * trainable / max(total, 1):.4f}"


def count_used(model) -> int:
    """Trainable values the task can reach: those with a nonzero gradient for one full-length synthetic input
    (every position real, every token id present). Position-table rows beyond the task's length, token-type
    rows never indexed and the padding row of an input Embedding count as trainable but unused."""
    import torch

    spec = model.spec
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return 0
    device = params[0].device
    rows = 1 if spec.vocab_size is None else -(-spec.vocab_size // spec.seq_len)  # enough rows to show every id
    # a zero-initialised tensor (LoRA's B) blocks the gradient of what feeds it (LoRA's A) at step 0 only: give it values
    zeros = {p: p.detach().clone() for p in params if p.dim() >= 2 and not p.any()}
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(0)
        was_training = model.training
        model.eval()  # no dropout: a dropped unit is not an unused one
        try:
            with torch.no_grad():
                for p in zeros:
                    p.normal_()
            if spec.vocab_size is None:
                x = torch.randn(rows, spec.seq_len, spec.token_dim, device=device)
            else:
                x = (torch.arange(rows * spec.seq_len, device=device) % spec.vocab_size).view(rows, spec.seq_len)
            out = model(x, torch.ones(x.shape[:2], dtype=torch.bool, device=device))
            grads = torch.autograd.grad((out * torch.randn_like(out)).sum(), params, allow_unused=True)
        finally:
            model.train(was_training)
            with torch.no_grad():
                for p, saved in zeros.items():
                    p.copy_(saved)
    return int(sum(int((g != 0).sum()) for g in grads if g is not None))


def count_params(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = trainable = 0
    for p in model.parameters():
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total
