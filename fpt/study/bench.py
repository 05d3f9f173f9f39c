"""`fpt bench [training overrides] [bench.KEY=VALUE ...]`: the training step's speed and memory against its references.

Options: configs/bench/default.yaml. Every variant runs in every precision of bench.precisions (the frozen trunk stored as
trunk.dtype makes it: bf16 under bf16-mixed with trunk.dtype=auto) on one synthetic batch of the task's shape (its class
constructed for its TaskSpec, never asked to read data):
  fpt   FPTModule.training_step and configure_optimizers as Lightning's automatic optimisation drives them (the precision
        plugin's autocast and clipping; no Trainer loop around them);  full: freeze=none;  fpt_gc: grad checkpointing;
  lstm, lstm_plain: model=lstm / model=lstm_plain at the trunk's width;  bare: a plain PyTorch loop on fpt's own model.
Variants and peak matmuls are timed round-robin (torch.utils.benchmark, one Timer.blocked_autorange per entry and
round); a ratio is the median of per-round ratios [quartiles]; MFU is a step's FLOP/s over the same round's peak of
its precision. How each number is measured: fpt/study/measure.py. bench.targets=FILE adds a met / MISSED verdict per target.
"""

from __future__ import annotations

import copy
import json
import platform
import re
import sys
import warnings
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from fpt.config import check_groups, compose, config_dir, is_multirun, resolved, rewrite
from fpt.config.kinds import freeze_of
from fpt.run.preflight import preflight
from fpt.errors import FPTError
from fpt.study.measure import (Entry, bare_entry, check, checkpoint_bytes, count_flops, kernels, matmul_settings, peak_bytes, peaks,
                         prime, run_rounds, spread, synthetic_batch, toolkit_entry, unique_bytes)

RATIOS = {"fpt_bare_step": "FPT/bare step", "fpt_full_step": "FPT/full step", "fpt_mfu": "FPT MFU", "fpt_full_peak_mem":
          "FPT/full peak mem", "gc_peak_mem": "FPT/FPT+gc peak mem", "slim_ckpt_trunk": "slim last.ckpt/trunk",
          "fpt_bf16_fp32_step": "FPT bf16/fp32 step", "trunk_bf16_fp32_bytes": "trunk bytes bf16/fp32"}


def options(cfg) -> dict:
    """cfg.bench, checked against its schema (fpt.config.sections.Bench): each bad value is one line naming what is allowed."""
    from omegaconf import OmegaConf

    from fpt.config.schema import check
    from fpt.config.sections import Bench

    o = check(Bench, OmegaConf.to_container(cfg.bench, resolve=True), "bench").model_dump()
    return {**o, "variants": list(dict.fromkeys(o["variants"]))}


def training_config(args: list[str]):
    """The composed config (training overrides and bench.*), checked the way `fpt train` checks it."""
    args = rewrite(args)
    check_groups(args)
    if is_multirun(args):
        raise FPTError("bench measures one configuration; drop --multirun")
    cfg = preflight(compose(args), data=False)  # the checked config; bench reads no data, only the task's shape
    if cfg.model.kind != "fpt":
        raise FPTError(f"bench builds its baselines itself (bench.variants=[lstm,...]); leave out model= (got model.kind={cfg.model.kind})")
    return cfg


def task_spec(task_cfg, seq_len: int | str):
    """The TaskSpec the task's class declares (constructed for it, no data read), at `seq_len` tokens."""
    from fpt.tasks.base import task_class, task_options

    try:
        spec = task_class(task_cfg)(task_options(task_cfg)).spec
    except FPTError:
        raise
    except Exception as e:  # a module or class not there, a bad option
        raise FPTError(f"task '{task_cfg.name}': cannot build {task_cfg.impl} for its shape ({type(e).__name__}: {e})") from None
    if seq_len != "task" and spec.readout == "last_k" and seq_len < spec.k:
        raise FPTError(f"bench.seq_len={seq_len} is shorter than the {spec.k} positions task '{task_cfg.name}' reads; choose at least {spec.k}")
    return spec if seq_len == "task" else replace(spec, seq_len=seq_len)


def variant_config(cfg, name: str, precision: str, hidden: int):
    """A variant's training config in `precision`: the user's (fpt, bare), freeze=none, grad checkpointing, or an LSTM."""
    from omegaconf import OmegaConf

    c = copy.deepcopy(cfg)
    OmegaConf.set_struct(c, False)
    c.trainer.precision = precision
    if name == "full":
        c.freeze, c.unfreeze.groups = [], []
    elif name == "fpt_gc":
        c.model.grad_checkpointing = True
    elif name.startswith("lstm"):  # what variant=lstm (variant=lstm_plain) selects, at the trunk's width
        base = OmegaConf.load(config_dir() / "model" / f"{name}.yaml")
        c.model, c.freeze, c.unfreeze.groups = base.model, None, []  # None: the kind's own (nothing frozen)
        c.optim.lr = OmegaConf.load(config_dir() / "variant" / f"{name}.yaml").optim.lr
        c.model.hidden = hidden
    return c


def build_module(cfg, spec, device):
    """The FPTModule fpt.run.assemble.build makes for `cfg` (seeded; frozen tensors stored in trunk.dtype), on `device`."""
    import lightning.pytorch as pl

    from fpt.run.lit import FPTModule
    from fpt.models.build import build_model
    from fpt.run.precision import store_frozen, trunk_dtype

    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    model = build_model(cfg, spec)
    store_frozen(model, trunk_dtype(cfg))
    return FPTModule(model, resolved(cfg)).to(device)


def build_entries(cfg, spec, opts: dict, precisions: list[str], device) -> tuple[list[Entry], dict]:
    """Every variant in every precision, each run once (optimizer state made); and {precision: the fpt module}."""
    entries, refs = [], {}
    for p in precisions:
        ref = refs[p] = build_module(variant_config(cfg, "fpt", p, 0), spec, device)
        batch = synthetic_batch(ref.model.spec, opts["batch"], device)  # the spec as built: maybe cut to the trunk's positions
        for name in opts["variants"]:
            vcfg = variant_config(cfg, name, p, ref.model.output.in_features)
            lit = ref if name in ("fpt", "bare") else build_module(vcfg, ref.model.spec, device)
            e = bare_entry(ref.model, batch, p, device, cfg.optim) if name == "bare" else toolkit_entry(name, lit, batch, p, device, vcfg.trainer)
            entries.append(e)
    return prime(entries), refs


def collect(cfg, spec, opts: dict, precisions: list[str], device):
    """Build, warm up, probe memory and FLOPs, then time every entry and the peak matmuls round-robin."""
    print(f"fpt bench: building {', '.join(opts['variants'])} in {', '.join(precisions)} on {device.type}", file=sys.stderr)
    entries, refs = build_entries(cfg, spec, opts, precisions, device)
    mm = [k for k in kernels(device, opts["peak_n"]) if k.precision in precisions]
    run_rounds(entries + mm, opts["warmup"], opts["min_run_time"], record=False)
    for e in entries:
        e.peak_mem, e.flops = peak_bytes(e, device), count_flops(e.step)
    print(f"fpt bench: timing {opts['rounds']} round(s) of {len(entries)} steps and {len(mm)} matmuls", file=sys.stderr)
    run_rounds(entries + mm, opts["rounds"], opts["min_run_time"])
    return entries, mm, refs


def device_precisions(opts: dict):
    """The device (cuda when there is one, or asked for) and bench.precisions (auto: fp32, and bf16-mixed where native)."""
    import torch

    from fpt.run.precision import native_bf16

    if opts["device"] == "cuda" and not torch.cuda.is_available():
        raise FPTError("bench.device=cuda but torch sees no GPU; use bench.device=cpu or auto")
    device = torch.device("cuda" if opts["device"] != "cpu" and torch.cuda.is_available() else "cpu")
    (native, where), asked = native_bf16({"accelerator": device.type}), opts["precisions"]
    if asked != "auto" and "bf16-mixed" in asked and not native:
        print(f"fpt bench: note: {where} has no native bf16: bf16-mixed runs emulated, slower than fp32", file=sys.stderr)
    return device, list(dict.fromkeys(asked)) if asked != "auto" else ["32-true", "bf16-mixed"] if native else ["32-true"]


def load_targets(path: str, task: str) -> dict[str, tuple[str, float]]:
    """{ratio: (op, bound)} from a targets file of `RATIO: <= N` lines; a section named by a task overrides for it."""
    from omegaconf import OmegaConf

    p = Path(path).expanduser()
    if not p.is_file():
        raise FPTError(f"bench.targets={path}: no such file")
    raw = OmegaConf.to_container(OmegaConf.load(p))
    out = {}
    for key, value in {**{k: v for k, v in raw.items() if not isinstance(v, dict)}, **(raw.get(task) or {})}.items():
        m = re.fullmatch(r"\s*(<=|>=)\s*([-+.0-9eE]+)\s*", str(value))
        if key not in RATIOS or not m:
            raise FPTError(f"{p}: '{key}: {value}' is not 'RATIO: <= N' (or >= N) with RATIO one of: {', '.join(RATIOS)}")
        out[key] = (m[1], float(m[2]))
    return out


def record(e: Entry, peak, trunk: dict, batch: int) -> dict:
    """The numbers of one variant in one precision; MFU paired round by round with the peak of its precision."""
    from fpt.models.freeze import count_params

    t, (trainable, total) = spread(e.times), count_params(e.model)
    mfu = spread([e.flops / s / (peak.flops / k) for s, k in zip(e.times, peak.times)]) if peak else {}
    ckpt = (checkpoint_bytes(e.lit, e.opt), checkpoint_bytes(e.lit, e.opt, True)) if e.lit is not None else (None, None)
    return {"variant": e.name, "precision": e.precision, **{f"step_ms{s}": t[k] * 1e3 for s, k in (("", "value"), ("_p25", "p25"), ("_p75", "p75"))},
            "step_ms_all": [x * 1e3 for x in e.times], "samples_per_s": batch / t["value"], "peak_mem_bytes": e.peak_mem,
            "flops_per_step": e.flops, "flops_per_s": e.flops / t["value"], "mfu": mfu.get("value"), "mfu_p25": mfu.get("p25"),
            "mfu_p75": mfu.get("p75"), "mfu_peak": peak and peak.label, "params_trainable": trainable, "params_total": total,
            "ckpt_bytes": ckpt[0], "ckpt_weights_bytes": ckpt[1], "loss0": e.loss0, **trunk[e.precision]}


def ratios(recs: list[dict], trunk: dict, precisions: list[str]) -> list[dict]:
    """Rows {ratio, precision, value[, p25, p75]}; timings as the median of per-round ratios (same round, same load)."""
    by = {(r["variant"], r["precision"]): r for r in recs}
    paired = lambda a, b: spread([x / y for x, y in zip(a["step_ms_all"], b["step_ms_all"])])  # noqa: E731
    rows = []
    for p in precisions:
        f, g = by.get(("fpt", p)), lambda n: by.get((n, p))  # noqa: B023
        mem = lambda n: g(n) and {"value": f["peak_mem_bytes"] / g(n)["peak_mem_bytes"]}  # noqa: E731, B023
        if f:
            rows += [{"ratio": k, "precision": p, **v} for k, v in {
                "fpt_bare_step": g("bare") and paired(f, g("bare")), "fpt_full_step": g("full") and paired(f, g("full")),
                "fpt_mfu": f["mfu"] is not None and {"value": f["mfu"], "p25": f["mfu_p25"], "p75": f["mfu_p75"]},
                "fpt_full_peak_mem": mem("full"), "gc_peak_mem": mem("fpt_gc"),
                "slim_ckpt_trunk": {"value": f["ckpt_bytes"] / f["trunk_bytes"]}}.items() if v]
    if len(trunk) == 2:
        rows.append({"ratio": "trunk_bf16_fp32_bytes", "precision": "both", "value": trunk["bf16-mixed"]["trunk_bytes"] / trunk["32-true"]["trunk_bytes"]})
    if ("fpt", "32-true") in by and ("fpt", "bf16-mixed") in by:
        rows.append({"ratio": "fpt_bf16_fp32_step", "precision": "both", **paired(by["fpt", "bf16-mixed"], by["fpt", "32-true"])})
    return rows


def judge(rows: list[dict], targets: dict) -> list[dict]:
    """The ratio rows, with `target` and `met` where the targets file sets one; a target nothing measured is met: None."""
    for r in rows:
        op, bound = targets.get(r["ratio"], (None, None))
        if op:
            r.update(target=f"{op} {bound:g}", met=r["value"] <= bound if op == "<=" else r["value"] >= bound)
    return rows + [{"ratio": k, "precision": "", "value": None, "target": f"{op} {b:g}", "met": None}
                   for k, (op, b) in targets.items() if k not in {r["ratio"] for r in rows}]


def results(entries, mm, refs, cfg, opts, precisions, device, targets) -> list[dict]:
    """One JSON record per variant x precision: its numbers, the run's ratios (and verdicts), peaks, trunk and config."""
    import torch

    best = peaks(mm)
    trunk = {p: {"trunk_bytes": unique_bytes(r.model.trunk.state_dict().values()),
                 "frozen_trunk_bytes": unique_bytes(t for t in r.model.trunk.parameters() if not t.requires_grad)} for p, r in refs.items()}
    recs = [record(e, best.get(e.precision), trunk, opts["batch"]) for e in entries]
    rows = judge(ratios(recs, trunk, precisions), targets or {})
    mats = [{"kernel": k.label, "precision": k.precision, "flops_per_s": spread([k.flops / t for t in k.times]), "rel_err": k.rel_err,
             "ok": k.ok, "check": check(k.precision, k.rel_err)[1], "peak": k is best[k.precision]} for k in mm]
    spec, cuda = next(iter(refs.values())).model.spec, device.type == "cuda"
    config = {"trunk": str(cfg.trunk.name or cfg.trunk.path), "arch": str(cfg.trunk.arch), "init": str(cfg.trunk.init),
              "freeze": freeze_of(cfg), "task": str(cfg.task.name),
              "seq_len": spec.seq_len, "token_dim": spec.token_dim, "vocab_size": spec.vocab_size, "num_classes": spec.num_classes,
              "n_targets": spec.n_targets, "batch": opts["batch"], "rounds": opts["rounds"], "warmup": opts["warmup"],
              "min_run_time": opts["min_run_time"], "precisions": precisions, "compile": bool(cfg.model.get("compile")),
              "device": device.type, "device_name": torch.cuda.get_device_name(device) if cuda else platform.processor() or platform.machine(),
              "threads": torch.get_num_threads(), "torch": torch.__version__, "matmul": matmul_settings(),
              "memory_method": "held + cuda max_memory_allocated" if cuda else "held + saved for backward (forward's end)",
              "time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "host": platform.node()}
    return [{**r, "ratios": {x["ratio"]: x for x in rows if x["precision"] in (r["precision"], "both")}, "all_ratios": rows,
             "targets": [x for x in rows if "met" in x] if targets is not None else None, "peaks": mats, "config": config} for r in recs]


def table(lines: list[dict]) -> str:
    """The printed report: one row per variant x precision, the checked peaks, trunk bytes, ratios (and verdicts)."""
    mib = lambda b: "-" if b is None else f"{b / 2**20:.1f}"  # noqa: E731
    q = lambda v, a, b, f: "-" if v is None else f"{v:{f}} [{a:{f}}, {b:{f}}]"  # noqa: E731
    head = ("variant", "precision", "trainable", "step ms [quartiles]", "samples/s", "peak MiB", "GFLOP/step", "GFLOP/s", "MFU [quartiles]", "ckpt MiB", "loss0")
    rows = [(r["variant"], r["precision"], f"{r['params_trainable']:,}", q(r["step_ms"], r["step_ms_p25"], r["step_ms_p75"], ".1f"),
             f"{r['samples_per_s']:.1f}", mib(r["peak_mem_bytes"]), f"{r['flops_per_step'] / 1e9:.3f}", f"{r['flops_per_s'] / 1e9:.1f}",
             q(r["mfu"], r["mfu_p25"], r["mfu_p75"], ".2f"), mib(r["ckpt_bytes"]), f"{r['loss0']:.5f}") for r in lines]
    w = [max(len(c) for c in col) for col in zip(head, *rows)]
    fmt = lambda row: "  ".join(c.ljust(n) if i < 2 else c.rjust(n) for i, (c, n) in enumerate(zip(row, w)))  # noqa: E731
    c, first = lines[0]["config"], lines[0]
    shape = f"{c['seq_len']} x {c['token_dim']}" if c["token_dim"] else f"{c['seq_len']} ids of {c['vocab_size']}"
    out = [f"fpt bench: {c['trunk']} ({c['init']}), {c['task']} {shape} -> {c['n_targets']} x {c['num_classes']} classes, batch {c['batch']}, "
           f"{c['device']} ({c['device_name']}), {c['threads']} threads; median [quartiles] of {c['rounds']} round-robin rounds "
           f"(+{c['warmup']} warmup), Timer.blocked_autorange(min_run_time={c['min_run_time']})", fmt(head), *map(fmt, rows),
           "peak matmuls (each result checked once against float64):",
           *(f"  {k['kernel']:<38} {k['precision']:<10} {q(*(k['flops_per_s'][s] / 1e9 for s in ('value', 'p25', 'p75')), '.1f')} GFLOP/s"
             f"  {k['check']}{'  <- peak' if k['peak'] else ''}" for k in first["peaks"]),
           "trunk tensor bytes: " + ", ".join(f"{r['precision']} {mib(r['trunk_bytes'])} MiB (frozen {mib(r['frozen_trunk_bytes'])})"
                                              for r in lines if r["variant"] == lines[0]["variant"]) + f"; memory: {c['memory_method']}",
           "ratios: median of per-round ratios [quartiles]" + ("; targets from bench.targets" if first["targets"] else "")]
    for v in first["all_ratios"]:
        val = "n/a" if v["value"] is None else q(v["value"], v["p25"], v["p75"], ".3f") if "p25" in v else f"{v['value']:.3f}"
        verdict = f"  target {v['target']:<7} {({True: 'met', False: 'MISSED', None: 'not measured'})[v['met']]}" if "met" in v else ""
        out.append(f"  {RATIOS[v['ratio']]:<22} {v['precision']:<10} {val:<26}{verdict}")
    return "\n".join(out)


def main(args: list[str]) -> int:
    """`fpt bench [overrides] [bench.KEY=VALUE ...]`: print the report, append one JSON line per variant x precision."""
    cfg = training_config(args)
    opts = options(cfg)
    targets = load_targets(opts["targets"], str(cfg.task.name)) if opts["targets"] else None
    spec, (device, precisions) = task_spec(cfg.task, opts["seq_len"]), device_precisions(opts)
    with warnings.catch_warnings():  # no Trainer is attached: the module's self.log calls return at once (and would warn)
        warnings.filterwarnings("ignore", message=r".*self\.log\(\)")
        lines = results(*collect(cfg, spec, opts, precisions, device), cfg, opts, precisions, device, targets)
    print(table(lines))
    out = Path(opts["out"]).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as f:
        f.writelines(json.dumps(r) + "\n" for r in lines)
    print(f"appended {len(lines)} line(s) to {out}")
    return 0
