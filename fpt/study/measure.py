"""How `fpt bench` measures: the steps it drives and times, what they cost, and what the hardware can do.

- Steps: the toolkit's (FPTModule under Lightning's precision plugin, in automatic optimisation's order) and a bare
  PyTorch loop; timed round-robin, one torch.utils.benchmark Timer.blocked_autorange per entry and round.
- Matmul peaks: the fastest n x n x n product of each precision, timed by fpt/study/bench.py in the same round-robin as
  the steps. Each kernel's result is compared once with the float64 product of the same fp32 inputs (relative
  Frobenius error). An fp32 kernel must be accurate to ~fp32 (error <= MAX_ERR): TF32 (10-bit mantissa) or bf16
  (7-bit) inside an "fp32" matmul (`torch.set_float32_matmul_precision("high")`, `torch.backends.*.fp32_precision`)
  shows as an error of 1e-4..1e-2 and is flagged, never reported as an fp32 peak.
- FLOPs: torch.utils.flop_counter.FlopCounterMode (matmuls and attention, forward and backward; a frozen weight
  gets its input gradient, never its own; the optimizer's elementwise work is not counted).
- Bytes: distinct storages of tensors; a step's peak (CUDA allocator, or on CPU what is live when the forward
  ends); the slim checkpoint as torch.save writes it.
"""

from __future__ import annotations

import io
import math
import statistics
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, Iterable

PEAK_N = {"cpu": 2048, "cuda": 8192}  # side of the peak matmuls per device type
# Relative Frobenius error of an n=2048 product of N(0,1) inputs: fp32 ~1e-7, TF32 ~3e-4, bf16 inputs ~3e-3.
MAX_ERR = {"32-true": 1e-5, "bf16-mixed": 2e-2}


@dataclass
class Kernel:
    """One timed matmul: what it multiplies, the precision it is a peak for, its float64 check, its times."""

    name: str
    precision: str  # 32-true or bf16-mixed
    label: str
    step: Callable[[], object]
    flops: int
    rel_err: float = float("nan")
    ok: bool = False
    times: list[float] = field(default_factory=list)  # seconds per product, one per round


def rel_error(out, ref) -> float:
    """||out - ref||_F / ||ref||_F, in float64."""
    return float((out.double() - ref).norm() / ref.norm())


def check(precision: str, err: float) -> tuple[bool, str]:
    """(whether a kernel of `precision` with relative error `err` computes what it claims, a verdict to print)."""
    bits = f"error {err:.1e} (~{-math.log2(err) if err > 0 else math.inf:.0f} bits)"
    if err <= MAX_ERR[precision]:
        return True, f"{bits} ok"
    if precision == "32-true":
        return False, f"{bits}: computes below fp32 (TF32/bf16?), NOT an fp32 peak"
    return False, f"{bits}: worse than bf16 inputs give, NOT a peak"


def kernels(device, n: int | None = None) -> list[Kernel]:
    """fp32 torch.mm, bf16 torch.mm and torch.mm under bf16 autocast (as Linear layers run under bf16-mixed),
    on n x n inputs, each checked once against float64."""
    import torch

    n = n or PEAK_N[device.type]
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=g).to(device) for _ in range(2))
    ref = a.double() @ b.double()
    a16, b16 = a.bfloat16(), b.bfloat16()
    c32, c16 = torch.empty_like(a), torch.empty_like(a16)

    def autocast_mm():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return torch.mm(a, b)

    out = [Kernel("mm_fp32", "32-true", f"torch.mm {n}^3 fp32", lambda: torch.mm(a, b, out=c32), 2 * n**3),
           Kernel("mm_bf16", "bf16-mixed", f"torch.mm {n}^3 bf16", lambda: torch.mm(a16, b16, out=c16), 2 * n**3),
           Kernel("autocast_bf16", "bf16-mixed", f"torch.mm {n}^3 fp32 in, bf16 autocast", autocast_mm, 2 * n**3)]
    for k in out:
        k.rel_err = rel_error(k.step(), ref)
        k.ok = check(k.precision, k.rel_err)[0]
    return out


def peaks(timed: list[Kernel]) -> dict[str, Kernel | None]:
    """{precision: its fastest kernel (median time) that passed the float64 check, or None}."""
    best: dict[str, Kernel | None] = {k.precision: None for k in timed}
    for k in timed:
        if k.ok and (best[k.precision] is None or statistics.median(k.times) < statistics.median(best[k.precision].times)):
            best[k.precision] = k
    return best


def matmul_settings() -> dict:
    """The switches that let an fp32 matmul compute in less, as this process has them."""
    import torch

    out = {"float32_matmul_precision": torch.get_float32_matmul_precision(), "cuda_allow_tf32": torch.backends.cuda.matmul.allow_tf32}
    for name, mod in (("cuda", torch.backends.cuda.matmul), ("mkldnn", getattr(torch.backends.mkldnn, "matmul", None))):
        if hasattr(mod, "fp32_precision"):
            out[f"{name}_fp32_precision"] = str(mod.fp32_precision)
    return out


def spread(values: list[float]) -> dict[str, float]:
    """Median and quartiles: the value, and how far the machine's noise moved it."""
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
    return {"value": statistics.median(values), "p25": q[0], "p75": q[2]}


def flop_formulas() -> dict:
    """Kernels FlopCounterMode has no formula for: CPU flash attention, fused LSTM layers (oneDNN, cuDNN; their
    backward computes input, recurrent and weight gradients: twice the forward's matmuls)."""
    import torch
    from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count

    def rnn(x, weights, passes=1):  # 2 x tokens x the gate weights, per pass
        return passes * 2 * x[0] * x[1] * sum(w[0] * w[1] for w in weights if len(w) == 2)

    f = {"_scaled_dot_product_flash_attention_for_cpu": lambda q, k, v, *a, **kw: sdpa_flop_count(q, k, v),
         "_scaled_dot_product_flash_attention_for_cpu_backward": lambda g, q, k, v, *a, **kw: sdpa_backward_flop_count(g, q, k, v),
         "mkldnn_rnn_layer": lambda x, w0, w1, *a, **kw: rnn(x, [w0, w1]),
         "mkldnn_rnn_layer_backward": lambda x, w1, w2, *a, **kw: rnn(x, [w1, w2], 2),
         "_cudnn_rnn": lambda x, weights, *a, **kw: rnn(x, weights), "_cudnn_rnn_backward": lambda x, weights, *a, **kw: rnn(x, weights, 2)}
    return {getattr(torch.ops.aten, k): v for k, v in f.items() if hasattr(torch.ops.aten, k)}


def count_flops(step: Callable[[], object]) -> int:
    """FLOPs of one call of `step`, run eagerly (FlopCounterMode sees no kernels torch.compile generated)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, custom_mapping=flop_formulas())
    with torch.compiler.set_stance("force_eager"), counter:
        step()
    return int(counter.get_total_flops())


def unique_bytes(tensors: Iterable) -> int:
    """Bytes of the distinct storages behind `tensors`."""
    return sum({t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}.values())


def peak_bytes(e: "Entry", device) -> int:
    """A step's peak memory, its own tensors only. GPU: the CUDA allocator's high-water mark over one step, less what
    other variants hold. CPU: what is live when the forward ends: parameters, buffers, optimizer state, a gradient per
    trained tensor where the forward still holds last step's (holds_grads), and the tensors autograd saves for backward
    (torch.autograd.graph.saved_tensors_hooks); unique storages, none counted twice; transient workspace not seen."""
    import torch

    params = list(e.model.parameters())
    state = params + list(e.model.buffers()) + [t for s in e.opt.state.values() for t in s.values() if torch.is_tensor(t)]
    if device.type == "cuda":
        torch.cuda.synchronize()
        others = torch.cuda.memory_allocated() - unique_bytes(state + [p.grad for p in params if p.grad is not None])
        torch.cuda.reset_peak_memory_stats()
        e.step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - others
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        e.loss()
    mine = {t.untyped_storage().data_ptr() for t in state}
    grads = sum(p.numel() * p.element_size() for p in params if p.requires_grad) if e.holds_grads else 0
    return unique_bytes(state) + grads + unique_bytes(t for t in saved if t.untyped_storage().data_ptr() not in mine)


def checkpoint_bytes(lit, opt, weights_only: bool = False) -> int:
    """The checkpoint the toolkit writes: Lightning's dict (with the optimizer state, as last.ckpt; weights only, as
    best.ckpt) after FPTModule.on_save_checkpoint drops the frozen trunk, as torch.save writes it."""
    import torch

    ckpt = {"epoch": 0, "global_step": 0, "state_dict": lit.state_dict()}
    if not weights_only:
        ckpt.update({"optimizer_states": [opt.state_dict()], "lr_schedulers": [], "callbacks": {}, "loops": {}})
    lit.on_save_checkpoint(ckpt)
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    return buf.tell()


def synthetic_batch(spec, batch: int, device) -> dict:
    """A batch of the task's shape: random tokens (features or ids), all real, random targets."""
    import torch

    g = torch.Generator().manual_seed(0)
    x = (torch.randint(0, spec.vocab_size, (batch, spec.seq_len), generator=g) if spec.vocab_size is not None
         else torch.randn(batch, spec.seq_len, spec.token_dim, generator=g))
    y = torch.randint(0, spec.num_classes, (batch, spec.n_targets), generator=g)
    return {"x": x.to(device), "mask": torch.ones(batch, spec.seq_len, dtype=torch.bool, device=device), "y": y.to(device)}


@dataclass
class Entry:
    """One variant in one precision: its step, its forward-and-loss, what it trains, and what was measured."""

    name: str
    precision: str
    step: Callable[[], object]
    loss: Callable[[], object]
    model: object
    opt: object
    lit: object = None  # the FPTModule (None for bare)
    holds_grads: bool = True  # last step's gradients are still live during the forward (Lightning zeroes after it)
    flops: int = 0
    peak_mem: int = 0
    loss0: float = float("nan")
    times: list[float] = field(default_factory=list)  # seconds per step, one per round


def toolkit_entry(name: str, lit, batch: dict, precision: str, device, trainer_cfg) -> Entry:
    """The module's training_step and optimizer, in the order Lightning's automatic optimisation runs them."""
    from lightning.pytorch import LightningModule
    from lightning.pytorch.plugins.precision import MixedPrecision, Precision
    from lightning.pytorch.utilities import GradClipAlgorithmType

    plugin = MixedPrecision(precision, device.type) if precision.endswith("-mixed") else Precision()
    opt = lit.configure_optimizers()
    clip, algo = float(trainer_cfg.get("gradient_clip_val") or 0), GradClipAlgorithmType(trainer_cfg.get("gradient_clip_algorithm") or "norm")
    own = type(lit).configure_gradient_clipping is not LightningModule.configure_gradient_clipping  # its default needs a Trainer
    clipping = lit.configure_gradient_clipping if own else plugin.clip_gradients

    def loss():
        with plugin.forward_context():
            return lit.training_step(batch, 0)

    def step():
        out = loss()  # Lightning's closure: training_step, zero_grad, backward
        lit.optimizer_zero_grad(0, 0, opt)
        lit.backward(out)
        clipping(opt, clip, algo)  # Lightning's configure_gradient_clipping hook: the module's, else the precision plugin's
        opt.step()

    return Entry(name, precision, step, loss, lit.model, opt, lit)


def bare_entry(model, batch: dict, precision: str, device, optim_cfg) -> Entry:
    """A plain PyTorch loop over the same model and trainable tensors: no Lightning, metrics or clipping."""
    import torch
    import torch.nn.functional as F

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=float(optim_cfg.lr), betas=tuple(optim_cfg.betas), **({"fused": True} if device.type == "cuda" else {}))
    amp = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if precision == "bf16-mixed" else nullcontext

    def loss():
        with amp():
            return F.cross_entropy(model(batch["x"], batch["mask"]).flatten(0, 1), batch["y"].flatten())  # logits (b n, c)

    def step():
        opt.zero_grad(set_to_none=True)
        loss().backward()
        opt.step()

    return Entry("bare", precision, step, loss, model, opt, holds_grads=False)


def prime(entries: list[Entry]) -> list[Entry]:
    """Each entry's loss0 before any of them steps (those that share a model see the same weights; dropout drawn alike),
    then one step each, which makes its optimizer state; a step that fails is one line."""
    import torch

    from fpt.errors import FPTError

    for e in entries:
        torch.manual_seed(0)
        with torch.no_grad():
            e.loss0 = float(e.loss())
    for e in entries:
        try:
            e.step()
        except RuntimeError as err:
            raise FPTError(f"{e.name} [{e.precision}]: the step failed: {(str(err).strip().splitlines() or [''])[0]}") from None
    return entries


def run_rounds(timed: list, rounds: int, min_run_time: float, record: bool = True) -> None:
    """`rounds` rounds over every entry, the order rotating; each entry one torch.utils.benchmark measurement a round."""
    import torch
    from torch.utils.benchmark import Timer

    pairs = [(t, Timer("step()", globals={"step": t.step}, num_threads=torch.get_num_threads(), label=t.name)) for t in timed]
    for r in range(rounds):
        for t, timer in pairs[r % len(pairs):] + pairs[: r % len(pairs)]:
            m = timer.blocked_autorange(min_run_time=min_run_time)
            if record:
                t.times.append(m.median)
