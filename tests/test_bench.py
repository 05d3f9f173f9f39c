"""`fpt bench` on a tiny trunk: one JSON line per variant x precision, FLOPs that match a hand count, bf16 storage that
halves the trunk, an fp32 peak that must be fp32, targets read from a file, and the GPU check's CPU form."""

import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from fpt.cli import main
from fpt.errors import FPTError
from tests.helpers import FAST, compose_cfg

B, T, D, L = 4, 8, 32, 2  # batch, tokens, the tiny GPT-2's width and depth (tests/helpers.py)
TARGETS = """\
fpt_full_step: "<= 1e-6"   # impossible: MISSED
fpt_bare_step: "<= 1000"   # replaced below for bit_xor
gc_peak_mem: ">= 1"
bit_xor:
  fpt_bare_step: "<= 1e-6"
"""


@pytest.fixture(scope="module")
def bench_run(tiny, tmp_path_factory) -> tuple[dict, str]:
    """One `fpt bench` on the tiny GPT-2, every variant in both precisions: ({(variant, precision): line}, printed)."""
    tmp = tmp_path_factory.mktemp("bench")
    (tmp / "targets.yaml").write_text(TARGETS)
    args = ["bench", "trunk=gpt2", f"trunk.path={tiny['gpt2']}", *FAST, "model.last_block_reads_only=false",  # every block whole: a clean hand count
            f"bench.batch={B}", f"bench.seq_len={T}", "bench.rounds=2", "bench.warmup=0", "bench.min_run_time=0", "bench.peak_n=128",
            "bench.variants=[fpt,full,lstm,lstm_plain,bare,fpt_gc]", "bench.precisions=[32-true,bf16-mixed]",
            f"bench.targets={tmp / 'targets.yaml'}", f"bench.out={tmp / 'bench.jsonl'}"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(args) == 0
    lines = [json.loads(x) for x in (tmp / "bench.jsonl").read_text().splitlines()]
    return {(r["variant"], r["precision"]): r for r in lines}, printed.getvalue()


@pytest.mark.slow
def test_one_line_per_variant_and_precision_with_positive_numbers(bench_run):
    lines, _ = bench_run
    assert sorted(lines) == sorted((v, p) for v in ("fpt", "full", "lstm", "lstm_plain", "bare", "fpt_gc") for p in ("32-true", "bf16-mixed"))
    for r in lines.values():
        for key in ("step_ms", "samples_per_s", "peak_mem_bytes", "flops_per_step", "flops_per_s", "mfu", "trunk_bytes"):
            assert r[key] > 0, (r["variant"], r["precision"], key)
        assert len(r["step_ms_all"]) == 2 and r["step_ms_p25"] <= r["step_ms"] <= r["step_ms_p75"]
        assert r["config"]["seq_len"] == T and r["config"]["batch"] == B and r["config"]["device"] == "cpu"
        assert (r["ckpt_bytes"] is None) == (r["variant"] == "bare")


def test_flops_match_a_hand_count(bench_run):
    lines, _ = bench_run
    n, attn = B * T, 4 * B * T * T * D  # tokens; one attention's two batched matmuls (QK^T, AV) over all heads
    linear = 2 * n * D * (3 * D + D + 4 * D + 4 * D)  # c_attn, attn.c_proj, c_fc, mlp.c_proj forward
    # frozen attention and feed-forward weights: forward, then only the input gradient (the same matmul again);
    # attention's backward: two matmuls per forward one; input layer Linear(1, D): forward + its weight gradient;
    # output layer on the 5 read positions, Linear(D, 2): forward, input and weight gradients
    fpt = L * (2 * linear + 3 * attn) + 2 * (2 * n * 1 * D) + 3 * (2 * B * 5 * D * 2)
    for p in ("32-true", "bf16-mixed"):
        assert lines["fpt", p]["flops_per_step"] == fpt
        assert lines["bare", p]["flops_per_step"] == fpt  # the same model, the same matmuls
        assert lines["full", p]["flops_per_step"] == fpt + L * linear  # plus every weight gradient of the trunk
        assert lines["fpt_gc", p]["flops_per_step"] == fpt + L * (linear + attn)  # plus each block's forward, recomputed


def test_bf16_storage_halves_the_frozen_trunk(bench_run):
    lines, _ = bench_run
    f32, b16 = lines["fpt", "32-true"], lines["fpt", "bf16-mixed"]
    assert b16["frozen_trunk_bytes"] * 2 == f32["frozen_trunk_bytes"]
    trained = f32["trunk_bytes"] - f32["frozen_trunk_bytes"]  # layernorms and positions: trained, so fp32 in both
    assert b16["trunk_bytes"] == f32["frozen_trunk_bytes"] // 2 + trained
    assert b16["ratios"]["trunk_bf16_fp32_bytes"]["value"] == pytest.approx(b16["trunk_bytes"] / f32["trunk_bytes"])


def test_memory_counts_what_each_step_holds(bench_run):
    lines, _ = bench_run
    for p in ("32-true", "bf16-mixed"):
        assert lines["fpt", p]["peak_mem_bytes"] < lines["full", p]["peak_mem_bytes"]
        assert lines["fpt_gc", p]["peak_mem_bytes"] < lines["fpt", p]["peak_mem_bytes"]  # blocks keep no activations
    # fp32: the same forward saves the same tensors, but Lightning zeroes gradients after the forward and the bare loop
    # before it, so the toolkit's peak holds one fp32 gradient per trained value more
    f, bare = lines["fpt", "32-true"], lines["bare", "32-true"]
    assert f["peak_mem_bytes"] - bare["peak_mem_bytes"] == 4 * f["params_trainable"]


def test_bare_loop_is_the_same_model(bench_run):
    lines, _ = bench_run
    for p in ("32-true", "bf16-mixed"):  # same batch, weights and dropout draws: the same loss to the last bit
        assert lines["bare", p]["loss0"] == lines["fpt", p]["loss0"] == lines["fpt_gc", p]["loss0"]
        assert lines["full", p]["loss0"] == lines["fpt", p]["loss0"]  # the same seeded trunk; only freezing differs
        assert lines["bare", p]["params_trainable"] == lines["fpt", p]["params_trainable"] < lines["full", p]["params_trainable"]
    assert lines["fpt", "bf16-mixed"]["loss0"] != lines["fpt", "32-true"]["loss0"]  # bf16 computes in less


def test_ratios_are_medians_of_per_round_ratios(bench_run):
    lines, _ = bench_run
    f, full = lines["fpt", "32-true"], lines["full", "32-true"]
    per_round = [a / b for a, b in zip(f["step_ms_all"], full["step_ms_all"])]
    assert f["ratios"]["fpt_full_step"]["value"] == pytest.approx(statistics.median(per_round))
    b16 = lines["fpt", "bf16-mixed"]
    per_round = [a / b for a, b in zip(b16["step_ms_all"], f["step_ms_all"])]
    assert b16["ratios"]["fpt_bf16_fp32_step"]["value"] == pytest.approx(statistics.median(per_round))
    assert f["ratios"]["gc_peak_mem"]["value"] == pytest.approx(f["peak_mem_bytes"] / lines["fpt_gc", "32-true"]["peak_mem_bytes"])
    assert f["ratios"]["slim_ckpt_trunk"]["value"] == pytest.approx(f["ckpt_bytes"] / f["trunk_bytes"])


def test_peaks_are_checked_against_float64_and_mfu_uses_the_steps_precision(bench_run):
    lines, _ = bench_run
    peaks = lines["fpt", "32-true"]["peaks"]
    assert {(k["precision"], k["ok"]) for k in peaks} == {("32-true", True), ("bf16-mixed", True)}
    fp32 = next(k for k in peaks if k["precision"] == "32-true")
    assert fp32["rel_err"] < 1e-5 and fp32["peak"] and "fp32" in fp32["kernel"]
    assert all(1e-4 < k["rel_err"] < 2e-2 for k in peaks if k["precision"] == "bf16-mixed")  # bf16 inputs lose ~8 bits
    assert lines["fpt", "32-true"]["mfu_peak"] == fp32["kernel"]
    assert "bf16" in lines["fpt", "bf16-mixed"]["mfu_peak"]


def test_the_float64_check_catches_a_lower_precision_fp32_kernel():
    import torch

    from fpt.study.measure import Kernel, check, peaks, rel_error

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(256, 256, generator=g), torch.randn(256, 256, generator=g)
    ref = a.double() @ b.double()
    assert check("32-true", rel_error(a @ b, ref))[0]
    tf32 = lambda t: (t.view(torch.int32) & ~0x1FFF).view(torch.float32)  # noqa: E731  10-bit mantissa, as TF32 keeps
    for fake in ((a.bfloat16() @ b.bfloat16()).float(), tf32(a) @ tf32(b)):  # what a reduced-precision "fp32" kernel returns
        ok, verdict = check("32-true", rel_error(fake, ref))
        assert not ok and "NOT an fp32 peak" in verdict, verdict
        assert check("bf16-mixed", rel_error(fake, ref))[0]  # as a bf16 result it is fine
    flagged = Kernel("x", "32-true", "fast but not fp32", lambda: None, 1, ok=False, times=[1e-9])
    honest = Kernel("y", "32-true", "fp32", lambda: None, 1, ok=True, times=[1.0])
    assert peaks([flagged, honest])["32-true"] is honest and peaks([flagged])["32-true"] is None


def test_targets_file_gives_verdicts(bench_run):
    lines, printed = bench_run
    verdicts = {(v["ratio"], v["precision"]): v for v in lines["fpt", "32-true"]["targets"]}
    assert verdicts["fpt_full_step", "32-true"]["met"] is False and verdicts["fpt_full_step", "bf16-mixed"]["met"] is False
    assert verdicts["fpt_bare_step", "32-true"]["target"] == "<= 1e-06"  # the bit_xor section replaced the general bound
    assert verdicts["gc_peak_mem", "32-true"]["met"] is True
    assert "MISSED" in printed and "target <= 1e-06" in printed


def test_verdicts_print_only_with_a_targets_file(bench_run):
    from fpt.study.bench import ratios, table

    lines, _ = bench_run
    recs = [{k: v for k, v in r.items() if k not in ("targets", "all_ratios")} for r in lines.values()]
    trunk = {p: {"trunk_bytes": lines["fpt", p]["trunk_bytes"]} for p in ("32-true", "bf16-mixed")}
    text = table([{**r, "targets": None, "all_ratios": ratios(recs, trunk, ["32-true", "bf16-mixed"])} for r in recs])
    assert "FPT/full step" in text and "MISSED" not in text and "target" not in text


@pytest.mark.slow
@pytest.mark.parametrize("option, needle", [
    ("bench.btach=8", "btach"),  # a typo: Hydra's own one-line error
    ("bench.rounds=0", "bench.rounds"),
    ("bench.batch=abc", "bench.batch"),
    ("bench.warmup=-1", "bench.warmup"),
    ("bench.seq_len=0", "bench.seq_len"),
    ("bench.variants=[fpt,nope]", "bench.variants"),
    ("bench.variants=[]", "bench.variants"),
    ("bench.precisions=[16-true]", "bench.precisions"),
    ("bench.device=tpu", "bench.device"),
    ("bench.seq_len=3", "at least 5"),  # bit_xor reads its last 5 positions
    ("bench.targets=/nonexistent/targets.yaml", "no such file"),
    ("model=lstm", "leave out model="),
])
def test_bad_options_are_one_line_errors(option, needle, capsys):
    assert main(["bench", "task=bit_xor", option]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert needle in err, err


def test_a_bad_targets_file_names_the_known_ratios(tmp_path, capsys):
    (tmp_path / "t.yaml").write_text('fpt_bare_stp: "<= 1.05"\n')
    assert main(["bench", f"bench.targets={tmp_path / 't.yaml'}"]) == 2
    err = capsys.readouterr().err
    assert "fpt_bare_stp" in err and "fpt_bare_step" in err and len(err.strip().splitlines()) == 1


def test_help_shows_the_options(capsys):
    assert main(["bench", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"\n{k}:" in out for k in ("batch", "seq_len", "rounds", "warmup", "variants", "precisions", "device", "targets", "out"))


def test_task_shapes_come_from_the_task_classes_without_data():
    from fpt.study.bench import task_spec

    spec = task_spec(compose_cfg("task=bit_xor", "data.root=/nonexistent").task, "task")
    assert (spec.seq_len, spec.token_dim, spec.k) == (10, 1, 5)
    assert task_spec(compose_cfg("task=bit_xor").task, 32).seq_len == 32
    spec = task_spec(compose_cfg("task=cifar10", "data.root=/nonexistent").task, "task")
    assert (spec.seq_len, spec.token_dim, spec.num_classes) == (64, 48, 10)
    with pytest.raises(FPTError, match="cannot build"):
        task_spec(OmegaConf.create({"impl": "tasks.not_written_yet:Nope", "name": "nope"}), "task")


def test_bare_loop_trains_the_toolkits_tensors(tiny):
    import torch

    from fpt.study import bench

    cfg = bench.training_config(["trunk=gpt2", f"trunk.path={tiny['gpt2']}", "bench.batch=2",
                                  "bench.variants=[fpt,bare]", "bench.precisions=[32-true]"])
    opts = bench.options(cfg)
    entries, refs = bench.build_entries(cfg, bench.task_spec(cfg.task, 12), opts, ["32-true"], torch.device("cpu"))
    by = {e.name: e for e in entries}
    assert by["bare"].model is by["fpt"].model is refs["32-true"].model
    ids = lambda opt: sorted(id(p) for g in opt.param_groups for p in g["params"])  # noqa: E731
    assert ids(by["bare"].opt) == ids(by["fpt"].opt) == sorted(id(p) for p in by["fpt"].model.parameters() if p.requires_grad)


@pytest.mark.slow
def test_gpu_check_runs_in_its_cpu_form(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_SMALL": "1", "GPU_CHECK_DIR": str(tmp_path),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run(["bash", "scripts/gpu_check.sh"], cwd=Path(__file__).resolve().parents[1], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = {line.split("  ")[0]: line for line in out.stdout.splitlines()}
    assert "gpu_check (cpu form)" in out.stdout and "step ms" in rows["part"] and "test acc" in rows["part"]
    assert any(k.startswith("bench fpt") for k in rows) and any(k.startswith("bench bare") for k in rows)
    for name in ("train bit_xor (MiniLM)", "train mnist digits (MiniLM)"):
        row = next(v for k, v in rows.items() if k.startswith(name))
        acc, wall = (float(x) for x in row.split()[-2:])
        assert 0 <= acc <= 1 and wall > 0
    assert float(rows["total"].split()[-1]) > 0
