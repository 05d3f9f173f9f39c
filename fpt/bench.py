"""`fpt bench`: speed and memory of the toolkit's training step, measured against its references.

    fpt bench [training overrides, as for fpt train] [bench.batch=16] [bench.seq_len=64|task]
              [bench.steps=20] [bench.warmup=3] [bench.out=bench.jsonl] [bench.variants=[fpt,full,lstm,bare]]
              [bench.device=auto|cpu|cuda]

For one trunk, task shape, batch and sequence length it times, in one process and one run:
  fpt   the toolkit's own step (FPTModule.training_step + configure_optimizers, driven the way
        Lightning's automatic optimisation drives it: forward and loss, zero_grad, backward,
        gradient clipping at trainer.gradient_clip_val, optimizer step) with the config's freeze;
  full  the same with freeze=none (full finetuning);
  lstm  the 3-layer LSTM baseline, hidden size = the trunk's;
  bare  a plain PyTorch loop over the fpt variant's own model: forward, F.cross_entropy, backward
        and an Adam step over the same trainable tensors; the reference for framework overhead;
  fpt_gc  the fpt variant with model.grad_checkpointing=true (each block recomputed in backward):
        not run by default; add it for long sequences, e.g. bench.variants=[fpt,fpt_gc] bench.seq_len=1024.
Timed steps are interleaved round-robin (with large matmuls that give the device's peak), so
machine noise hits every variant alike; the report is ratios measured in this one run, each the
median of per-round ratios (the entries of one round run back to back, under the same load).

Inputs are synthetic batches of the task's shape: the task class is constructed for its TaskSpec
but never asked to check or read its files.

Memory (peak per variant, over one steady-state step run apart from the timed ones):
  cpu   the tensors the variant holds when its step starts (parameters, buffers, gradients,
        optimizer state; unique storages) plus the high-water mark of the bytes the CPU allocator
        hands out during the step, from torch.profiler's memory events (profile_memory=True);
  cuda  the same resident bytes plus torch.cuda.max_memory_allocated() over the step minus what
        was allocated before it (other variants' tensors share the device, so not their bytes).
FLOPs: torch.utils.flop_counter.FlopCounterMode on that step: the matmul/attention/LSTM FLOPs that
actually run, forward and backward (a frozen weight gets its input gradient, never its own); the
optimizer's elementwise work is not counted. MFU: the step's FLOP/s over the peak matmul's FLOP/s
in the same round, median over rounds.
Checkpoint: Lightning's checkpoint dict (weights and optimizer state) after FPTModule.on_save_checkpoint
drops the frozen trunk, as torch.save writes it; the trunk's size is its state dict's tensor bytes.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from fpt.config import check_groups, compose, config_dir, is_multirun, preflight, resolved, rewrite
from fpt.errors import FPTError

VARIANTS = ("fpt", "full", "lstm", "bare", "fpt_gc")
DEFAULTS = {"batch": 16, "seq_len": 64, "steps": 20, "warmup": 3, "out": "bench.jsonl",
            "variants": ["fpt", "full", "lstm", "bare"], "device": "auto"}
LSTM_LAYERS = 3
MATMUL = {"cpu": (2048, "float32"), "cuda": (8192, "bfloat16")}  # side n of the n x n peak matmul, dtype
# The project's targets (issue "Speed and memory, measured"): ratio -> (label, comparison, bound).
TARGETS = {
    "fpt_bare_step": ("FPT/bare step", "<=", 1.05),  # framework overhead over a plain PyTorch loop
    "fpt_full_step": ("FPT/full step", "<=", 0.72),  # frozen weights skip their weight gradients
    "fpt_mfu": ("FPT MFU", ">=", 0.60),  # of the measured matmul peak
    "fpt_full_peak_mem": ("FPT/full peak mem", "<=", 0.75),
    "slim_ckpt_trunk": ("slim ckpt/trunk", "<=", 0.02),
    "gc_peak_mem": ("FPT/FPT+gc peak mem", ">=", 2.0),  # grad checkpointing at long sequences (1024 tokens)
}
# Shapes of the known tasks, used only when a task's class cannot be built (not written yet, or mid-edit).
KNOWN_SHAPES = {
    "cifar10": dict(seq_len=64, token_dim=48, num_classes=10),
    "mnist": dict(seq_len=49, token_dim=16, num_classes=10),
    "cifar10_lra": dict(seq_len=1024, token_dim=1, num_classes=10),
    "listops": dict(seq_len=2000, vocab_size=17, pad_id=0, num_classes=10, truncatable=True),
    "remote_homology": dict(seq_len=1024, vocab_size=30, pad_id=0, num_classes=1195, readout="mean", truncatable=True),
}
# Lines the profiler's C++ side prints on every session; the allocator's "allocated before the profiling
# started" warning is expected and handled (see _cpu_peak).
KINETO_NOISE = re.compile(r"SyncActivityProfilerHandler|profiler_st(art|op)|gpuGetDeviceCount|^USDT:|before the profiling started")
PROBE_MARK = "fpt_bench_probe"


# --- options --------------------------------------------------------------------------------------
def split_args(args: list[str]) -> tuple[dict, list[str]]:
    """(`bench.*` options as typed values, the remaining training overrides)."""
    from omegaconf import OmegaConf

    opts, rest = {}, []
    for a in args:
        key, eq, value = a.partition("=")
        if not key.lstrip("+").startswith("bench."):
            rest.append(a)
            continue
        name = key.lstrip("+")[len("bench."):]
        if not eq:
            raise FPTError(f"expected bench.{name}=VALUE, got '{a}'")
        if name not in DEFAULTS:
            raise FPTError(f"unknown bench option 'bench.{name}'; known: {', '.join('bench.' + k for k in DEFAULTS)}")
        opts[name] = OmegaConf.to_container(OmegaConf.from_dotlist([f"v={value}"]))["v"] if value else value
    return check_options({**DEFAULTS, **opts}), rest


def check_options(o: dict) -> dict:
    """Each bad bench option is a one-line FPTError naming what is allowed."""
    for key, low in (("batch", 1), ("steps", 1), ("warmup", 0)):
        if isinstance(o[key], bool) or not isinstance(o[key], int) or o[key] < low:
            raise FPTError(f"bench.{key} must be an integer >= {low}, got {o[key]!r}")
    if o["seq_len"] in ("task", None):
        o["seq_len"] = None  # the task's own length
    elif isinstance(o["seq_len"], bool) or not isinstance(o["seq_len"], int) or o["seq_len"] < 1:
        raise FPTError(f"bench.seq_len must be a positive integer (or 'task' for the task's own length), got {o['seq_len']!r}")
    names = o["variants"].split(",") if isinstance(o["variants"], str) else o["variants"]
    names = [str(v).strip() for v in names or [] if str(v).strip()]
    bad = [v for v in names if v not in VARIANTS]
    if bad:
        raise FPTError(f"unknown bench variant '{bad[0]}'; choose from: {', '.join(VARIANTS)} (e.g. bench.variants=[fpt,bare])")
    if not names:
        raise FPTError(f"bench.variants is empty; choose from: {', '.join(VARIANTS)}")
    o["variants"] = list(dict.fromkeys(names))
    if not isinstance(o["out"], str) or not o["out"].strip():
        raise FPTError(f"bench.out must be a file path, got {o['out']!r}")
    if o["device"] not in ("auto", "cpu", "cuda"):
        raise FPTError(f"bench.device must be auto, cpu or cuda, got {o['device']!r}")
    return o


def training_config(overrides: list[str]):
    """The `fpt train` config for these overrides, checked the way `fpt train` checks it."""
    overrides = rewrite(overrides)
    check_groups(overrides)
    if is_multirun(overrides):
        raise FPTError("bench measures one configuration; drop --multirun")
    cfg = compose(overrides)
    preflight(cfg)
    if cfg.model.kind != "fpt":
        raise FPTError(f"bench builds its baselines itself (variant lstm); leave out model= (got model.kind={cfg.model.kind})")
    return cfg


# --- what gets built --------------------------------------------------------------------------------
def class_spec(task_cfg):
    """(the TaskSpec the task's class declares, None) or (None, why not): constructed, never checked, no data read."""
    from tasks.base import META_KEYS, task_class

    options = {k: v for k, v in dict(task_cfg).items() if k not in META_KEYS}
    try:
        return task_class(task_cfg)(**options).spec, None
    except FPTError:
        raise  # a bad task option: the user's to fix
    except Exception as e:  # a module not written yet, or one being edited: the shape table can still serve
        return None, f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:200]


def task_spec(task_cfg, seq_len: int | None):
    """The task's TaskSpec (from its class, else the table of known shapes), at `seq_len` tokens."""
    from tasks.base import TaskSpec

    name = str(task_cfg.name)
    spec, why = class_spec(task_cfg)
    if spec is None and name not in KNOWN_SHAPES:
        raise FPTError(f"task '{name}': cannot build {task_cfg.impl} for its shape ({why})")
    if spec is None:
        spec = TaskSpec(**KNOWN_SHAPES[name])
        print(f"note: {task_cfg.impl} unavailable ({why}); using the known {name} shape, task options ignored", file=sys.stderr)
    if seq_len is None:
        return spec
    if spec.readout == "last_k" and seq_len < spec.k:
        raise FPTError(f"bench.seq_len={seq_len} is shorter than the {spec.k} positions task '{name}' reads; choose at least {spec.k}")
    return replace(spec, seq_len=seq_len)


def variant_config(cfg, name: str, hidden: int):
    """The training config of a variant: the user's (fpt, bare), freeze=none (full), or the LSTM baseline."""
    from omegaconf import OmegaConf

    c = copy.deepcopy(cfg)
    OmegaConf.set_struct(c, False)
    if name == "full":
        c.freeze, c.unfreeze.groups = [], []
    elif name == "fpt_gc":
        c.model.grad_checkpointing = True
    elif name == "lstm":
        lstm = OmegaConf.load(config_dir() / "model" / "lstm.yaml")  # the same file `model=lstm` selects
        c.model = lstm.model
        c.model.hidden, c.model.layers = hidden, LSTM_LAYERS
        c.freeze, c.unfreeze.groups, c.optim.lr = lstm.freeze, [], lstm.optim.lr
    return c


def build_module(cfg, spec, device):
    """The toolkit's FPTModule for `cfg` and `spec`, seeded as fpt.train.build seeds it, on `device`."""
    import lightning.pytorch as pl

    from fpt.lit import FPTModule
    from fpt.model import build_model

    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    return FPTModule(build_model(cfg, spec), resolved(cfg)).to(device)


def synthetic_batch(spec, batch: int, device, seed: int = 0) -> dict:
    """A batch of the task's shape: random tokens (features or ids), all real, random targets."""
    import torch

    g = torch.Generator().manual_seed(seed)
    if spec.vocab_size is not None:
        x = torch.randint(0, spec.vocab_size, (batch, spec.seq_len), generator=g)
    else:
        x = torch.randn(batch, spec.seq_len, spec.token_dim, generator=g)
    y = torch.randint(0, spec.num_classes, (batch, spec.n_targets), generator=g)
    mask = torch.ones(batch, spec.seq_len, dtype=torch.bool)
    return {k: v.to(device) for k, v in {"x": x, "mask": mask, "y": y}.items()}


# --- the timed entries -------------------------------------------------------------------------------
@dataclass
class Entry:
    """One round-robin entry: its step, and for model variants what it holds and what it measured."""

    name: str
    step: Callable[[], object]
    loss: Callable[[], object] | None = None  # forward and loss only, on the bench batch
    model: object = None  # the nn.Module trained
    opt: object = None
    lit: object = None  # the FPTModule (None for bare and matmul)
    flops: int = 0  # per step
    peak_mem: int = 0  # bytes
    loss0: float = float("nan")  # loss on the bench batch before any update
    label: str = ""  # what a matmul entry multiplies
    times: list[float] = field(default_factory=list)  # seconds per timed step


def _amp(device):
    """Lightning's bf16-mixed on GPU (autocast around the training step); plain fp32 on CPU."""
    import torch

    return (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" else nullcontext


def toolkit_entry(name: str, lit, batch: dict, device, clip: float | None, clip_algo: str) -> Entry:
    """The module's own training_step and optimizer, in the order Lightning's automatic optimisation runs them."""
    import torch

    opt = lit.configure_optimizers()
    params = [p for g in opt.param_groups for p in g["params"]]
    amp = _amp(device)

    def loss():
        with amp():
            return lit.training_step(batch, 0)

    def step():
        out = loss()  # Lightning's closure: training_step, then zero_grad, then backward
        lit.optimizer_zero_grad(0, 0, opt)
        lit.backward(out)
        # then the precision plugin clips over the optimizer's parameters, and the optimizer steps
        if clip and clip_algo == "value":
            torch.nn.utils.clip_grad_value_(params, clip)
        elif clip:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        return out

    return Entry(name, step, loss, lit.model, opt, lit)


def bare_entry(model, batch: dict, device, optim_cfg) -> Entry:
    """A plain PyTorch loop over the same model and trainable tensors: no Lightning, metrics or clipping."""
    import torch
    import torch.nn.functional as F

    params = [p for p in model.parameters() if p.requires_grad]
    fused = {"fused": True} if device.type == "cuda" else {}
    opt = torch.optim.Adam(params, lr=float(optim_cfg.lr), betas=tuple(optim_cfg.betas), **fused)
    amp = _amp(device)

    def loss():
        with amp():
            logits = model(batch["x"], batch["mask"])  # (b, n, c)
            return F.cross_entropy(logits.flatten(0, 1), batch["y"].flatten())

    def step():
        opt.zero_grad(set_to_none=True)
        out = loss()
        out.backward()
        opt.step()
        return out

    return Entry("bare", step, loss, model, opt)


def matmul_entries(device) -> list[Entry]:
    """Large n x n matmuls; the fastest (by median) is the device's peak.

    torch.mm is the kernel the model's Linear layers use (MKL on CPU, cuBLAS bf16 on GPU). On CPU oneDNN's
    fp32 matmul runs too: on AMD CPUs MKL takes its AVX2 path while oneDNN uses AVX-512, about 2x faster.
    """
    import torch

    n, dtype = MATMUL[device.type]
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=g).to(device, getattr(torch, dtype)) for _ in range(2))
    c = torch.empty_like(a)
    out = [Entry("matmul:mm", lambda: torch.mm(a, b, out=c), flops=2 * n**3, label=f"torch.mm {n}^3 {dtype}")]
    if device.type == "cpu" and torch.backends.mkldnn.is_available() and hasattr(torch._C._nn, "mkldnn_linear"):
        am, bm = a.to_mkldnn(), b.to_mkldnn()  # oneDNN's own layout, as torch.utils.mkldnn.MkldnnLinear uses it
        out.append(Entry("matmul:onednn", lambda: torch._C._nn.mkldnn_linear(am, bm), flops=2 * n**3, label=f"oneDNN {n}^3 {dtype}"))
    return out


def build_entries(cfg, spec, opts: dict, device) -> tuple[list[Entry], object]:
    """The requested variants, all on one synthetic batch; returns them and the fpt module (the reference)."""
    ref = build_module(cfg, spec, device)
    spec = ref.model.spec  # a variable-length task may have been cut to the trunk's positions
    batch = synthetic_batch(spec, opts["batch"], device)
    hidden = ref.model.output.in_features
    clip, algo = cfg.trainer.get("gradient_clip_val"), str(cfg.trainer.get("gradient_clip_algorithm") or "norm")
    entries = []
    for name in opts["variants"]:
        if name == "bare":
            entries.append(bare_entry(ref.model, batch, device, cfg.optim))
            continue
        lit = ref if name == "fpt" else build_module(variant_config(cfg, name, hidden), spec, device)
        entries.append(toolkit_entry(name, lit, batch, device, clip, algo))
    return entries, ref


# --- measuring ---------------------------------------------------------------------------------------
def first_losses(entries: list[Entry]) -> None:
    """Each variant's loss on the bench batch before any update (loss0), the RNG (dropout) seeded alike for each."""
    import torch

    for e in entries:
        torch.manual_seed(0)
        with torch.no_grad():
            e.loss0 = float(e.loss())


def run_rounds(entries: list[Entry], rounds: int, sync: Callable[[], None]) -> None:
    """Time `rounds` steps of every entry, round-robin; the order rotates so none always runs first."""
    for r in range(rounds):
        k = r % len(entries)
        for e in entries[k:] + entries[:k]:
            sync()
            t0 = time.perf_counter()
            e.step()
            sync()
            e.times.append(time.perf_counter() - t0)


def resident_bytes(e: Entry) -> int:
    """Bytes a variant holds between steps: parameters, buffers, gradients, optimizer state (unique storages)."""
    import torch

    params = list(e.model.parameters())
    tensors = params + list(e.model.buffers()) + [p.grad for p in params if p.grad is not None]
    tensors += [t for state in e.opt.state.values() for t in state.values() if torch.is_tensor(t)]
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


@contextmanager
def _without_kineto_noise():
    """The profiler's C++ side writes session lines (profiler_start/stop) straight to fd 2: keep the rest."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [ln for ln in tmp.read().decode(errors="replace").splitlines() if not KINETO_NOISE.search(ln)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


def _cuda_peak(e: Entry, measured: Callable[[], None]) -> int:
    """Resident bytes plus the CUDA allocator's high-water mark over one step (other variants' bytes excluded)."""
    import torch

    e.step()  # as on CPU: the measured step is a steady-state one
    torch.cuda.synchronize()
    resident, before = resident_bytes(e), torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    measured()
    torch.cuda.synchronize()
    return resident + torch.cuda.max_memory_allocated() - before


def _cpu_peak(e: Entry, measured: Callable[[], None]) -> int:
    """Resident bytes plus the high-water mark of the CPU allocator's bytes over one step, from profiler events.

    Two steps run under the profiler and only the second counts: the allocator reports no free of a block
    allocated before profiling began (last step's gradients, which zero_grad frees), so the first step's
    events are incomplete, the second's are not.
    """
    from torch.profiler import ProfilerActivity, profile, record_function

    with _without_kineto_noise(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        e.step()
        resident = resident_bytes(e)
        with record_function(PROBE_MARK):
            measured()
    events = prof.profiler.kineto_results.events()
    mark = next(ev for ev in events if ev.name() == PROBE_MARK)
    lo, hi = mark.start_ns(), mark.start_ns() + mark.duration_ns()
    live = peak = 0
    for ev in sorted((ev for ev in events if ev.name() == "[memory]" and lo <= ev.start_ns() <= hi), key=lambda ev: ev.start_ns()):
        live += ev.nbytes()  # allocations are positive, frees negative
        peak = max(peak, live)
    return resident + peak


def _rnn_flops(inp: tuple, weights: list, passes: int = 1) -> int:
    """2 x tokens x (gate weights) per pass: an LSTM layer's matmuls, input and recurrent."""
    tokens = inp[0] * inp[1]
    return passes * 2 * tokens * sum(w[0] * w[1] for w in weights if len(w) == 2)


def _flop_formulas() -> dict:
    """Kernels FlopCounterMode has no formula for: CPU flash attention, fused LSTM layers (oneDNN, cuDNN).

    The fused LSTM backward computes input, recurrent and weight gradients: twice the forward's matmuls.
    """
    import torch
    from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count

    aten = torch.ops.aten
    formulas = {
        "_scaled_dot_product_flash_attention_for_cpu": lambda q, k, v, *a, **kw: sdpa_flop_count(q, k, v),
        "_scaled_dot_product_flash_attention_for_cpu_backward": lambda g, q, k, v, *a, **kw: sdpa_backward_flop_count(g, q, k, v),
        "mkldnn_rnn_layer": lambda x, w0, w1, *a, **kw: _rnn_flops(x, [w0, w1]),
        "mkldnn_rnn_layer_backward": lambda x, w1, w2, *a, **kw: _rnn_flops(x, [w1, w2], 2),
        "_cudnn_rnn": lambda x, weights, *a, **kw: _rnn_flops(x, weights),
        "_cudnn_rnn_backward": lambda x, weights, *a, **kw: _rnn_flops(x, weights, 2),
    }
    return {getattr(aten, name): f for name, f in formulas.items() if hasattr(aten, name)}


def probe(e: Entry, device) -> None:
    """FLOPs and peak memory of one untimed (steady-state) step of a model variant."""
    from torch.utils.flop_counter import FlopCounterMode

    # Memory first, of a plain step: under FlopCounterMode, tensors that activation checkpointing frees stay alive.
    e.peak_mem = _cuda_peak(e, e.step) if device.type == "cuda" else _cpu_peak(e, e.step)
    counter = FlopCounterMode(display=False, custom_mapping=_flop_formulas())
    with counter:
        e.step()
    e.flops = int(counter.get_total_flops())


class _ByteCounter:
    """A write-only file that counts what torch.save writes to it."""

    def __init__(self):
        self.n = 0

    def write(self, b) -> int:
        self.n += len(b)
        return len(b)

    def flush(self) -> None:
        pass


def checkpoint_bytes(lit, opt, weights_only: bool = False) -> int:
    """Size of the checkpoint the toolkit writes: Lightning's dict after FPTModule.on_save_checkpoint slims it.

    last.ckpt holds the optimizer state (Adam: two moments per trained tensor) for an exact resume;
    best.ckpt, the selected model that fpt eval and analysis read, is weights only (`weights_only`).
    """
    import torch

    ckpt = {"epoch": 0, "global_step": 0, "state_dict": lit.state_dict()}
    if not weights_only:
        ckpt.update({"optimizer_states": [opt.state_dict()], "lr_schedulers": [], "callbacks": {}, "loops": {}})
    lit.on_save_checkpoint(ckpt)
    sink = _ByteCounter()
    torch.save(ckpt, sink)
    return sink.n


def tensor_bytes(module) -> int:
    """Bytes of a module's state dict (unique storages): the frozen trunk a full checkpoint would hold."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in module.state_dict().values()}
    return sum(storages.values())


# --- reporting -----------------------------------------------------------------------------------------
def paired(a: list[float], b: list[float]) -> list[float]:
    """Per-round ratios a_i / b_i: the entries of one round run back to back, under the same machine load."""
    return [x / y for x, y in zip(a, b)]


def spread(values: list[float]) -> dict[str, float]:
    """Median and quartiles: the ratio, and how far the machine's noise moved it."""
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
    return {"value": statistics.median(values), "p25": q[0], "p75": q[2]}


def mfu_rounds(flops: int, times: list[float], peak: Entry) -> list[float]:
    """Model FLOPs utilisation round by round: achieved FLOP/s over the matmul's FLOP/s in the same round."""
    return paired([flops / t for t in times], [peak.flops / t for t in peak.times])


def variant_record(e: Entry, batch: int, peak: Entry, matmuls: list[Entry]) -> dict:
    """The numbers of one variant, from its timed steps and its probe step; MFU paired round by round with the peak."""
    from fpt.freeze import count_params

    med = statistics.median(e.times)
    trainable, total = count_params(e.model)
    mfu = statistics.median(mfu_rounds(e.flops, e.times, peak))
    by_kernel = {m.label: round(statistics.median(mfu_rounds(e.flops, e.times, m)), 4) for m in matmuls}
    return {
        "variant": e.name, "step_ms": round(med * 1e3, 3), "step_ms_min": round(min(e.times) * 1e3, 3),
        "step_ms_all": [round(t * 1e3, 3) for t in e.times],
        "samples_per_s": round(batch / med, 3), "peak_mem_bytes": e.peak_mem, "flops_per_step": e.flops,
        "flops_per_s": round(e.flops / med), "mfu": round(mfu, 4), "mfu_by_kernel": by_kernel,
        "params_trainable": trainable, "params_total": total,
        "ckpt_bytes": checkpoint_bytes(e.lit, e.opt) if e.lit is not None else None,
        "ckpt_weights_bytes": checkpoint_bytes(e.lit, e.opt, weights_only=True) if e.lit is not None else None,
        "loss0": e.loss0,
    }


def ratios(recs: dict[str, dict], peak: Entry, trunk_bytes: int) -> dict[str, dict | None]:
    """The ratios the project sets targets on (None: a variant they need was not run).

    Timings: the median of per-round ratios with its quartiles, and `best`, the ratio of the fastest steps:
    load only ever adds time, so the minima estimate a quiet machine.
    """
    def steps(a: str, b: str):
        if a not in recs or b not in recs:
            return None
        ta, tb = recs[a]["step_ms_all"], recs[b]["step_ms_all"]
        return {**spread(paired(ta, tb)), "best": min(ta) / min(tb)}

    f = recs.get("fpt")
    mfu = None
    if f:
        times = [t / 1e3 for t in f["step_ms_all"]]
        best = f["flops_per_step"] / min(times) / (peak.flops / min(peak.times))
        mfu = {**spread(mfu_rounds(f["flops_per_step"], times, peak)), "best": best}
    mem = {"value": f["peak_mem_bytes"] / recs["full"]["peak_mem_bytes"]} if f and "full" in recs else None
    gc = {"value": f["peak_mem_bytes"] / recs["fpt_gc"]["peak_mem_bytes"]} if f and "fpt_gc" in recs else None
    return {"fpt_bare_step": steps("fpt", "bare"), "fpt_full_step": steps("fpt", "full"), "fpt_mfu": mfu,
            "fpt_full_peak_mem": mem, "slim_ckpt_trunk": {"value": f["ckpt_bytes"] / trunk_bytes} if f else None,
            "gc_peak_mem": gc}


def verdicts(rat: dict[str, dict | None]) -> dict[str, dict]:
    """Each ratio against its target: value (and quartiles for timings), bound, met (None when not measured)."""
    out = {}
    for key, (_, op, bound) in TARGETS.items():
        r = {k: round(x, 4) for k, x in (rat[key] or {}).items()}
        v = r.get("value")
        met = None if v is None else (v <= bound if op == "<=" else v >= bound)
        out[key] = {"value": v, **r, "target": f"{op} {bound}", "met": met}
    return out


def run_config(cfg, spec, opts: dict, device) -> dict:
    """What was measured, where: trunk, task shape, batch, device, dtype, versions, threads."""
    import torch

    cuda = device.type == "cuda"
    return {
        "trunk": str(cfg.trunk.name), "arch": str(cfg.trunk.arch), "trunk_path": cfg.trunk.path, "init": str(cfg.trunk.init),
        "freeze": list(cfg.freeze), "task": str(cfg.task.name), "seq_len": spec.seq_len, "token_dim": spec.token_dim,
        "vocab_size": spec.vocab_size, "num_classes": spec.num_classes, "n_targets": spec.n_targets, "readout": spec.readout,
        "batch": opts["batch"], "steps": opts["steps"], "warmup": opts["warmup"], "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if cuda else platform.processor() or platform.machine(),
        "dtype": "bf16-mixed" if cuda else "float32", "torch": torch.__version__, "threads": torch.get_num_threads(),
        "lstm_layers": LSTM_LAYERS,
        "memory_method": "resident + cuda max_memory_allocated delta" if cuda else "resident + profiler allocator high-water mark",
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "host": platform.node(),
    }


def _mib(b: int | None) -> str:
    return "-" if b is None else f"{b / 2**20:.1f}"


def table(lines: list[dict]) -> str:
    """The aligned table on screen: one row per variant, then the peak matmul and the target ratios."""
    head = ("variant", "trainable", "step ms", "samples/s", "peak MiB", "GFLOP/step", "GFLOP/s", "MFU", "ckpt MiB", "loss0")
    rows = [(r["variant"], f"{r['params_trainable']:,}", f"{r['step_ms']:.1f}", f"{r['samples_per_s']:.2f}", _mib(r["peak_mem_bytes"]),
             f"{r['flops_per_step'] / 1e9:.2f}", f"{r['flops_per_s'] / 1e9:.2f}", f"{r['mfu']:.2f}", _mib(r["ckpt_bytes"]),
             f"{r['loss0']:.6f}") for r in lines]
    widths = [max(len(c) for c in col) for col in zip(head, *rows)]
    fmt = lambda row: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))  # noqa: E731
    c, m = lines[0]["config"], lines[0]["matmul"]
    shape = f"{c['seq_len']} x {c['token_dim']}" if c["token_dim"] else f"{c['seq_len']} ids of {c['vocab_size']}"
    out = [f"fpt bench: {c['trunk']} ({c['init']}), {c['task']} {shape} -> {c['n_targets']} x {c['num_classes']} classes, "
           f"batch {c['batch']}, {c['device']} {c['dtype']}, {c['threads']} threads, median of {c['steps']} round-robin steps "
           f"(+{c['warmup']} warmup)", fmt(head), *map(fmt, rows),
           *(f"matmul {k['kernel']}: {k['flops_per_s'] / 1e9:.2f} GFLOP/s, {k['step_ms']:.1f} ms"
             f"{'  <- peak (MFU)' if k['kernel'] == m['peak'] else ''}" for k in m["kernels"]),
           f"trunk {_mib(lines[0]['trunk_bytes'])} MiB (tensor bytes); ckpt = last.ckpt (weights and optimizer state, "
           f"for resume); best.ckpt (weights only): " + ", ".join(f"{r['variant']} {_mib(r['ckpt_weights_bytes'])} MiB"
                                                                 for r in lines if r["ckpt_weights_bytes"])]
    out.append("target ratios (timings: median of per-round ratios [quartiles]; best: ratio of the fastest steps)")
    for key, v in lines[0]["targets"].items():
        shown = "n/a" if v["value"] is None else f"{v['value']:.2%}" if key == "slim_ckpt_trunk" else f"{v['value']:.3f}"
        quartiles = f"[{v['p25']:.3f}, {v['p75']:.3f}]  best {v['best']:.3f}" if "p25" in v else ""
        state = {True: "met", False: "MISSED", None: "not measured"}[v["met"]]
        out.append(f"  {TARGETS[key][0]:<18} {shown:>8} {quartiles:<28}  target {v['target']:<7} {state}")
    return "\n".join(out)


def append_jsonl(path: Path, recs: list[dict]) -> None:
    """One JSON line per variant, appended: runs accumulate in one file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")


# --- the command ----------------------------------------------------------------------------------------
def pick_device(choice: str):
    """cuda when there is one (or asked for), else cpu."""
    import torch

    if choice == "cuda" and not torch.cuda.is_available():
        raise FPTError("bench.device=cuda but torch sees no GPU; use bench.device=cpu or auto")
    return torch.device("cuda" if choice != "cpu" and torch.cuda.is_available() else "cpu")


def measure(cfg, spec, opts: dict, device) -> tuple[list[Entry], list[Entry], object]:
    """Build the variants, warm up, probe FLOPs and memory, then time them round-robin with the matmuls."""
    import torch

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    _status(f"building {', '.join(opts['variants'])} on {device.type}")
    entries, ref = build_entries(cfg, spec, opts, device)
    first_losses(entries)
    matmuls = matmul_entries(device)
    timed = entries + matmuls
    _status(f"{opts['warmup']} warmup round(s), then FLOPs and memory of one step each")
    run_rounds(timed, opts["warmup"], sync)
    for e in entries:
        probe(e, device)
    for e in timed:
        e.times.clear()
    _status(f"timing {opts['steps']} round(s) of {', '.join(e.name for e in timed)}")
    run_rounds(timed, opts["steps"], sync)
    return entries, matmuls, ref


def _status(msg: str) -> None:
    print(f"fpt bench: {msg}", file=sys.stderr, flush=True)


def matmul_record(matmuls: list[Entry]) -> tuple[Entry, dict]:
    """The peak kernel (highest median FLOP/s) and what every matmul kernel measured."""
    rate = {m.name: m.flops / statistics.median(m.times) for m in matmuls}
    peak = max(matmuls, key=lambda m: rate[m.name])
    kernels = [{"kernel": m.label, "flops_per_s": round(rate[m.name]), "step_ms": round(statistics.median(m.times) * 1e3, 3),
                "step_ms_all": [round(t * 1e3, 3) for t in m.times]} for m in matmuls]
    return peak, {"peak": peak.label, "flops_per_s": round(rate[peak.name]), "kernels": kernels}


def results(entries: list[Entry], matmuls: list[Entry], ref, cfg, opts: dict, device) -> list[dict]:
    """One JSON record per variant: its numbers, the target ratios, the matmul peak, the trunk's size, the config."""
    peak, matmul_rec = matmul_record(matmuls)
    recs = [variant_record(e, opts["batch"], peak, matmuls) for e in entries]
    trunk_bytes = tensor_bytes(ref.model.trunk)
    checks = verdicts(ratios({r["variant"]: r for r in recs}, peak, trunk_bytes))
    # the spec as built: a variable-length task may have been cut to the trunk's positions
    config = run_config(cfg, ref.model.spec, opts, device)
    return [{**r, "ratios": {k: v["value"] for k, v in checks.items()}, "targets": checks, "matmul": matmul_rec,
             "trunk_bytes": trunk_bytes, "config": config} for r in recs]


def main(args: list[str]) -> int:
    """`fpt bench [training overrides] [bench.key=value ...]`: print the table, append JSON lines to bench.out."""
    if any(a in ("-h", "--help", "help") for a in args):
        print(__doc__)
        return 0
    opts, overrides = split_args(args)
    cfg = training_config(overrides)
    spec = task_spec(cfg.task, opts["seq_len"])
    device = pick_device(opts["device"])
    with warnings.catch_warnings():
        # No Trainer is attached, so the module's self.log calls return at once (and would warn each time).
        warnings.filterwarnings("ignore", message=r".*self\.log\(\)")
        entries, matmuls, ref = measure(cfg, spec, opts, device)
        lines = results(entries, matmuls, ref, cfg, opts, device)
    print(table(lines))
    out = Path(opts["out"]).expanduser()
    append_jsonl(out, lines)
    print(f"appended {len(lines)} line(s) to {out}")
    return 0
