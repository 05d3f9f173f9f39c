"""What computing the last block at the read positions only saves, per trunk and task shape.

    python scripts/readout_saving.py [--threads 2] [--rounds 15]

For each (trunk, task shape) it builds the FPT model twice from the same config, with
model.last_block_reads_only=true and =false, checks that their logits agree, and times one training step
(forward, loss, backward) of each with torch.utils.benchmark, the two interleaved round by round in one
process. It prints the median step times, their ratio (median of per-round ratios, with quartiles) and
the largest logit difference. Trunks are built from their known configs with random weights (no download):
the work is the same as the pretrained model's.
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F
from torch.utils import benchmark

from fpt.config import compose
from fpt.models.build import build_model
from fpt.tasks.spec import TaskSpec

CASES = [  # (label, trunk overrides, task spec)
    ("MiniLM, bit XOR (10 tokens, read 5)", ["trunk=minilm", "trunk.init=random"],
     TaskSpec(seq_len=10, token_dim=1, num_classes=2, readout="last_k", k=5)),
    ("MiniLM, MNIST (49 tokens, read 1)", ["trunk=minilm", "trunk.init=random"],
     TaskSpec(seq_len=49, token_dim=16, num_classes=10, readout="last")),
    ("GPT-2 small, CIFAR-10 (64 tokens, read 1)", ["trunk=gpt2", "trunk.init=random"],
     TaskSpec(seq_len=64, token_dim=48, num_classes=10, readout="last")),
    ("GPT-2 small, bit memory (120 tokens, read 20)", ["trunk=gpt2", "trunk.init=random"],
     TaskSpec(seq_len=120, token_dim=50, num_classes=2, readout="last_k", k=20, targets_per_position=50)),
]


def step(model, x, mask, y):
    logits = model(x, mask)
    F.cross_entropy(logits.flatten(0, 1).float(), y.flatten()).backward()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'case':<46} {'whole ms':>9} {'reads ms':>9} {'reads/whole':>12} {'quartiles':>15} {'max |Δlogit|':>13}")
    for label, trunk, spec in CASES:
        cfg = compose([*trunk, "trainer.precision=32-true", "trunk.dropout=0.0", "model.input_dropout=0.0"])
        fast = build_model(cfg, spec).train()
        whole = build_model(compose([*trunk, "trainer.precision=32-true", "trunk.dropout=0.0", "model.input_dropout=0.0",
                                     "model.last_block_reads_only=false"]), spec).train()
        whole.load_state_dict(fast.state_dict())
        g = torch.Generator().manual_seed(0)
        x = torch.randn(args.batch, spec.seq_len, spec.token_dim, generator=g)
        mask = torch.ones(args.batch, spec.seq_len, dtype=torch.bool)
        y = torch.randint(0, spec.num_classes, (args.batch, spec.n_targets), generator=g)
        with torch.no_grad():
            diff = float((fast(x, mask) - whole(x, mask)).abs().max())
        timers = {name: benchmark.Timer("step(m, x, mask, y)", globals={"step": step, "m": m, "x": x, "mask": mask, "y": y})
                  for name, m in (("whole", whole), ("reads", fast))}
        for t in timers.values():
            t.timeit(2)  # warm-up
        times = {name: [] for name in timers}
        for _ in range(args.rounds):
            for name, t in timers.items():
                times[name].append(t.timeit(1).median)
        ratios = sorted(r / w for r, w in zip(times["reads"], times["whole"]))
        q = statistics.quantiles(ratios, n=4)
        print(f"{label:<46} {1e3 * statistics.median(times['whole']):9.1f} {1e3 * statistics.median(times['reads']):9.1f} "
              f"{statistics.median(ratios):12.3f} {f'[{q[0]:.3f}, {q[2]:.3f}]':>15} {diff:13.2e}")


if __name__ == "__main__":
    main()
