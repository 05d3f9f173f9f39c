"""`fpt sweep` and `fpt report` on a tiny trunk: the grid, resume, failures, selection, the report."""

import csv
import json
import shutil

import pytest

from fpt.study.sweep import select
from tests.helpers import run_fpt_process

GRID = ["variant=fpt,full", "seed=0,1"]


def _sweep(tiny, sweep_dir, *extra, key="out", cwd=None):
    fast = ["trunk=gpt2", f"trunk.path={tiny['gpt2']}", "trainer.max_steps=4", "trainer.val_check_interval=2",
            "trainer.enable_progress_bar=false", "task.val_size=64", "task.test_size=64"]
    p, _ = run_fpt_process("sweep", *GRID, *fast, *extra, f"{key}={sweep_dir}", cwd=cwd)
    return p


def _rows(sweep_dir):
    with open(sweep_dir / "results.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def swept(tiny, tmp_path_factory):
    """A 2 x 2 sweep placed by Hydra's own key (hydra.sweep.dir): the runs land there, nothing under ./sweeps."""
    sweep_dir, cwd = tmp_path_factory.mktemp("sweep"), tmp_path_factory.mktemp("cwd")
    p = _sweep(tiny, sweep_dir, key="hydra.sweep.dir", cwd=cwd)
    assert p.returncode == 0, p.stderr[-3000:]
    assert list(cwd.iterdir()) == []
    return sweep_dir


@pytest.mark.slow
def test_two_by_two_sweep_gives_four_rows(swept):
    rows = _rows(swept)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    assert sorted((r["variant"], r["seed"]) for r in rows) == [("FPT", "0"), ("FPT", "1"), ("finetuned pretrained", "0"), ("finetuned pretrained", "1")]
    assert all(0.0 <= float(r["test/acc"]) <= 1.0 for r in rows)


@pytest.mark.slow
def test_rerun_skips_finished_runs_and_redoes_a_deleted_one(tiny, swept):
    victim = next(d for d in swept.iterdir() if d.is_dir() and "variant=full" in d.name and "seed=1" in d.name)
    keep = {d: (d / "results.json").stat().st_mtime_ns for d in swept.iterdir() if d.is_dir() and d != victim and (d / "results.json").exists()}
    shutil.rmtree(victim)
    p = _sweep(tiny, swept, key="sweep.dir")  # the older spelling of out= still works
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("skip (finished)") == 3
    assert (victim / "results.json").is_file()
    assert all((d / "results.json").stat().st_mtime_ns == t for d, t in keep.items())
    assert len(_rows(swept)) == 4


@pytest.mark.slow
def test_report_has_the_table_the_configs_and_plots(swept):
    from fpt.study.report import report

    md = report(swept).read_text()
    assert "| variant | bit_xor |" in md and "| FPT |" in md and "| finetuned pretrained |" in md
    assert "(n=2)" in md and "config `" in md
    precision = {r["precision"] for r in _rows(swept)}
    assert len(precision) == 1 and precision <= {"32-true", "bf16-mixed"} and f"runs: {precision.pop()} 4." in md
    assert (swept / "plots" / "learning_curves.png").stat().st_size > 5000
    assert (swept / "plots" / "accuracy_bars.png").stat().st_size > 5000


@pytest.mark.slow
def test_report_writes_where_out_says_and_knows_each_tasks_chance(swept, tmp_path, capsys):
    from fpt.cli import main
    from fpt.study.bundle import task_chances
    from fpt.study.sweep import collect

    assert main(["report", f"dir={swept}", f"out={tmp_path}"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'report.md'}"
    assert (tmp_path / "plots" / "accuracy_bars.png").stat().st_size > 5000
    assert task_chances(collect(swept)) == {"bit_xor": 0.5}  # the chance line of its accuracy plots


@pytest.mark.slow
def test_one_failing_run_does_not_stop_the_others(tiny, tmp_path):
    p = _sweep(tiny, tmp_path, "model.depth=1,9")  # the tiny trunk has 2 blocks: depth 9 fails when built
    assert p.returncode == 1  # the sweep reports that not every run finished
    rows = _rows(tmp_path)
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(rows) == 8 and len(failed) == 4
    assert all("model.depth=9" in r["error"] and "choose 1..2" in r["error"] for r in failed)
    assert "failed:" in p.stdout


def test_selection_picks_lr_by_validation_not_test():
    rows = [
        {"status": "ok", "variant": "v", "task": "t", "lr": lr, "val/acc": val, "test/acc": test, "run_dir": f"r{i}", "config": ""}
        for i, (lr, val, test) in enumerate([(1e-3, 0.9, 0.5), (1e-3, 0.8, 0.6), (1e-4, 0.6, 0.99), (1e-4, 0.6, 0.97)])
    ]
    (cell,) = select(rows)
    assert cell["lr"] == 1e-3 and cell["n"] == 2
    assert cell["test_mean"] == pytest.approx(0.55) and cell["test_std"] == pytest.approx(0.0707, abs=1e-4)
    assert json.dumps(cell["lrs"])  # both lrs are listed for the report


def test_report_rows_follow_the_sweeps_variant_order_not_the_alphabet(tmp_path):
    from fpt.study.bundle import sweep_order

    (tmp_path / "multirun.yaml").write_text("hydra:\n  sweeper:\n    params:\n      variant: output_only,plus_ln,plus_input,plus_pos\n")
    rows = [{"config": f"seed=0 variant={v}"} for v in ("plus_input", "plus_ln", "plus_pos", "output_only")]
    ordered = [r["config"].split("variant=")[1] for r in sorted(rows, key=sweep_order(tmp_path))]
    assert ordered == ["output_only", "plus_ln", "plus_input", "plus_pos"]  # the paper's row order
    assert sorted(rows, key=sweep_order(tmp_path / "no_sweep_here")) == rows  # no multirun.yaml: as found


@pytest.mark.slow
def test_scaling_sweep_has_one_row_per_variant_size_and_seed_and_a_size_plot(tiny, tmp_path):
    from fpt.study.report import report

    fast = ["trunk=gpt2", f"trunk.path={tiny['gpt2']}", "trainer.max_steps=4", "trainer.val_check_interval=2",
            "trainer.enable_progress_bar=false", "task.val_size=64", "task.test_size=64"]
    p, _ = run_fpt_process("sweep", "data.train_size=8,64", "variant=fpt,full", "seed=0,1", *fast, f"out={tmp_path}")
    assert p.returncode == 0, p.stderr[-3000:]
    rows = _rows(tmp_path)
    keys = sorted((r["variant"], r["seed"]) for r in rows)
    assert len(rows) == 8 and len(set(keys)) == 8  # (variant with its size, seed) names each run once
    assert {r["variant"] for r in rows} == {f"{v} data.train_size={n}" for v in ("FPT", "finetuned pretrained") for n in (8, 64)}
    md = report(tmp_path).read_text()
    assert md.index("| FPT data.train_size=8 |") < md.index("| FPT data.train_size=64 |")  # the sweep's order, not the alphabet
    assert (tmp_path / "plots" / "accuracy_vs_train_size.png").stat().st_size > 5000


@pytest.mark.slow
def test_seed0_protocol_chooses_the_lr_on_seed_0_then_runs_the_other_seeds_at_it(tiny, tmp_path):
    from fpt.study.report import report
    from fpt.study.sweep import collect

    fast = ["trunk=gpt2", f"trunk.path={tiny['gpt2']}", "trainer.max_steps=4", "trainer.val_check_interval=2",
            "trainer.enable_progress_bar=false", "task.val_size=64", "task.test_size=64", "stop_at_val_acc=null"]
    p, _ = run_fpt_process("sweep", "variant=fpt,scratch", "optim.lr=1e-4,1e-2", "seed=0,1,2", "sweep.lr_protocol=seed0", *fast,
               f"hydra.sweep.dir={tmp_path}")
    assert p.returncode == 0, p.stderr[-3000:]
    rows = collect(tmp_path)
    assert len(rows) == 2 * 2 + 2 * 2  # every lr on seed 0, then seeds 1 and 2 at one lr per variant
    for cell in select(rows, on_seed=0):
        seed0 = {float(r["lr"]): float(r["val/acc"]) for r in rows if r["variant"] == cell["variant"] and str(r["seed"]) == "0"}
        assert cell["lr"] == max(seed0, key=lambda lr: (seed0[lr], -lr)) and cell["n"] == 3
        assert {str(r["seed"]) for r in rows if r["variant"] == cell["variant"] and float(r["lr"]) != cell["lr"]} == {"0"}
    md = report(tmp_path).read_text()
    assert "chosen on seed 0's validation metric" in md and "## Train vs test accuracy (paper Table 7)" in md
    assert "| full transformer (scratch) |" in md


def test_report_sets_accuracy_against_trainable_values_with_the_ablations_note(tmp_path):
    """Every variant on one chart and in one table, ordered by trainable values used; no_trunk's note line."""
    import json as _json

    from fpt.study.report import report

    runs = [("lora", "fpt", 3202, 0.9), ("fpt", "fpt", 5570, 1.0), ("notrunk", "no_trunk", 130, 0.5)]
    for name, kind, used, acc in runs:
        d = tmp_path / name
        d.mkdir()
        (d / "results.json").write_text(_json.dumps({
            "status": "ok", "task": "bit_xor", "model": kind, "seed": 0, "lr": 1e-3, "val/acc": acc, "test/acc": acc,
            "params_used": used, "label": name, "overrides": {"variant": name}}))
    text = report(tmp_path).read_text()
    table = text.split("## Parameter efficiency")[1]
    assert table.index("| notrunk | 130 | 50.0") < table.index("| lora | 3,202 | 90.0") < table.index("| fpt | 5,570 | 100.0")
    assert "note: no trunk: the input layer, the readout and the output layer alone" in table
    assert (tmp_path / "plots" / "accuracy_vs_params.png").stat().st_size > 10_000


def test_parameter_efficiency_shows_an_error_metric_as_it_is_with_its_direction(tmp_path, monkeypatch):
    """An MSE task: the table and the plot show MSE (not x100, not 'accuracy'), lower is better."""
    import json as _json

    from fpt.study import efficiency
    from fpt.study.report import report

    for name, used, mse in [("fpt", 5570, 0.25), ("lora", 3202, 0.5)]:
        d = tmp_path / name
        d.mkdir()
        (d / "results.json").write_text(_json.dumps({
            "status": "ok", "task": "sines", "model": "fpt", "seed": 0, "lr": 1e-3, "metric": "mse", "mode": "min",
            "val/mse": mse, "test/mse": mse, "params_used": used, "label": name, "overrides": {"variant": name}}))
    figs = []
    monkeypatch.setattr(efficiency, "save", lambda fig, path, tight=True: figs.append(fig) or path)
    table = report(tmp_path).read_text().split("## Parameter efficiency")[1]
    assert "| sines | lora | 3,202 | 0.5 ± 0 (n=1) | mse ↓ |" in table and "accuracy" not in table.split("\n\n")[1]
    ax = figs[0].axes[0]
    assert ax.get_ylabel() == "test mse ↓"
    assert {float(line.get_ydata()[0]) for line in ax.lines} == {0.25, 0.5}  # markers and caps, not x100
    assert efficiency.axis_label("map") == "map (%) ↑"


def test_a_swept_data_set_is_a_column_and_the_tasks_references_are_rows(tmp_path):
    """data.name varies: one column per set (uea/GunPoint), the variant rows keep their labels, and each set's own
    baseline/* numbers are italic rows (a range where a column's runs recorded different ones)."""
    import json as _json

    from fpt.study.report import report

    runs = [("fpt", "GunPoint", 0.9, 0.913), ("fpt", "ArrowHead", 0.6, 0.8), ("no_trunk", "GunPoint", 0.5, 0.913),
            ("no_trunk", "ArrowHead", 0.4, 0.7)]  # ArrowHead's two runs disagree on the reference: a range
    for variant, name, acc, nn in runs:
        d = tmp_path / f"{variant}-{name}"
        d.mkdir()
        (d / "results.json").write_text(_json.dumps({
            "status": "ok", "task": "uea", "model": "fpt", "seed": 0, "lr": 1e-3, "val/acc": acc, "test/acc": acc,
            "baseline/1nn_acc": nn, "baseline/note": "text is not a number", "label": variant,
            "overrides": {"variant": variant, "data.name": name, "experiment": "x"}}))
    md = report(tmp_path).read_text().split("## Validation")[0]
    assert "| variant | uea/ArrowHead (acc % ↑) | uea/GunPoint (acc % ↑) |" in md  # no multirun.yaml: as found
    assert "| fpt | 60.0 ± 0.0 (n=1) | 90.0 ± 0.0 (n=1) |" in md
    assert "| *baseline/1nn_acc* | 70.0–80.0 | 91.3 |" in md and "baseline/note" not in md
    assert (tmp_path / "plots" / "accuracy_bars.png").stat().st_size > 10_000


def test_a_reference_named_for_a_metric_is_a_row_only_in_that_metrics_columns():
    from fpt.study.report import references

    rows = [{"task": "forecast", "metric": "mse", "baseline/dlinear_mse": 0.4, "baseline/dlinear_mae": 0.43},
            {"task": "uea", "metric": "acc", "baseline/minirocket_acc": 0.99, "baseline/1nn_acc": 0.9},
            {"task": "mnist", "metric": "acc", "baseline/logreg_acc": 0.92, "baseline/logreg_c": 0.1}]
    assert references(rows) == {"baseline/dlinear_mse": {"forecast": [0.4]}, "baseline/minirocket_acc": {"uea": [0.99]},
                                "baseline/1nn_acc": {"uea": [0.9]}, "baseline/logreg_acc": {"mnist": [0.92]}}
    # not rows: the MAE in an MSE column, the C that validation chose (a setting, not a score)


def test_lr_ties_on_validation_break_on_validation_loss_then_on_the_smaller_lr():
    def rows(loss_small, loss_big):
        return [{"status": "ok", "variant": "v", "task": "t", "lr": lr, "val/acc": 1.0, "val/loss": loss, "test/acc": t,
                 "run_dir": f"r{lr}", "config": ""} for lr, loss, t in [(1e-4, loss_small, 0.6), (1e-3, loss_big, 0.9)]]
    assert select(rows(0.30, 0.05))[0]["lr"] == 1e-3  # the tie at val/acc 1.0 goes to the lower loss
    assert select(rows(0.05, 0.30))[0]["lr"] == 1e-4
    assert select(rows("", ""))[0]["lr"] == 1e-4  # runs recorded before val/loss: the smaller lr, as before


def test_a_cell_with_a_run_still_improving_is_marked_budget_bound(tmp_path):
    from fpt.study.report import report

    for name, improving in [("a", True), ("b", False)]:
        d = tmp_path / name
        d.mkdir()
        (d / "results.json").write_text(json.dumps({
            "status": "ok", "task": "bit_xor", "model": "fpt", "seed": 0, "lr": 1e-3, "val/acc": 0.8, "test/acc": 0.8,
            "improving_at_end": improving, "label": name, "overrides": {"variant": name}}))
    md = report(tmp_path).read_text().split("## Validation")[0]
    assert "| a | 80.0 ± 0.0 (n=1) † |" in md and "| b | 80.0 ± 0.0 (n=1) |" in md
    assert "† budget-bound" in md


def test_each_rows_difference_to_fpt_has_a_paired_bootstrap_interval(tmp_path):
    """FPT right on 90% of 400 test examples; LoRA wrong on four more (-1.0 point, the same way on every seed: the
    interval excludes zero); "noisy" is right on other examples at the same rate (not distinguishable); the frozen random trunk at
    50%: FPT - frozen random is about +40 points with an interval far from zero."""
    import numpy as np

    from fpt.study.intervals import paired_interval
    from fpt.study.report import report

    rng = np.random.default_rng(0)
    for seed in (0, 1, 2):
        fpt = (rng.random(400) < 0.9).astype(float)
        lora = fpt.copy()
        lora[np.flatnonzero(fpt)[:4]] = 0.0
        noisy = fpt.copy()  # ten right answers turned wrong and ten wrong ones right: different examples, same mean
        noisy[rng.choice(np.flatnonzero(fpt == 1), 10, replace=False)] = 0.0
        noisy[rng.choice(np.flatnonzero(fpt == 0), 10, replace=False)] = 1.0
        for label, v in [("FPT", fpt), ("LoRA", lora), ("noisy", noisy), ("frozen random", (rng.random(400) < 0.5).astype(float))]:
            d = tmp_path / f"{label}-{seed}"
            d.mkdir()
            np.savez(d / "test_examples.npz", values=v, metric="acc")
            (d / "results.json").write_text(json.dumps({
                "status": "ok", "task": "bit_xor", "model": "fpt", "seed": seed, "lr": 1e-3, "val/acc": 0.9,
                "test/acc": float(v.mean()), "label": label, "overrides": {"variant": label, "seed": str(seed)}}))
    md = report(tmp_path).read_text().split("## Differences with 95% confidence intervals")[1].split("\n## ")[0]
    lora_row = next(ln for ln in md.splitlines() if ln.startswith("| LoRA − FPT |"))
    assert "| -1.0 [-2.0, -0.2] (n=3) |" in lora_row  # small but the same way on every seed: distinguishable
    noisy_row = next(ln for ln in md.splitlines() if ln.startswith("| noisy − FPT |"))
    assert "| +0.0 [" in noisy_row and "not distinguishable" in noisy_row
    random_row = next(ln for ln in md.splitlines() if ln.startswith("| FPT − frozen random |"))
    mean, lo, hi = (float(x) for x in random_row.split("| ")[2].replace("[", "").replace("]", "").replace(",", "").split()[:3])
    assert 35 < mean < 45 and lo > 30 and "not distinguishable" not in random_row and "(n=3)" in random_row
    same = {s: np.ones(10) for s in (0, 1)}
    assert paired_interval(same, same)[:3] == (0.0, 0.0, 0.0)
    assert paired_interval(same, {s: np.ones(11) for s in (0, 1)}) is None  # different test sets: no pairing


def test_the_ablation_sets_its_rows_against_its_fpt_row():
    """The parameter-group ablation has no row labelled FPT: its '+ positions' row (variant=plus_pos) is FPT's groups,
    and the other rows' intervals are set against it (cpu_ablation's page had no interval at all)."""
    import numpy as np

    from fpt.study.intervals import reference, table

    right = {"+ positions": np.ones(50), "output only": np.r_[np.ones(25), np.zeros(25)]}
    by = {(v, "bit_xor"): {"runs": [f"{v}-{s}" for s in (0, 1)]} for v in right}
    examples = {f"{v}-{s}": right[v] for v in right for s in (0, 1)}
    rows = table(by, ["output only", "+ positions"], ["bit_xor"], {"bit_xor": "acc"},
                 {r: int(r[-1]) for r in examples}, examples)
    assert reference(["output only", "+ positions"]) == "+ positions" and reference(["FPT", "+ positions"]) == "FPT"
    assert rows[2].startswith("| output only − + positions | -50.0 [") and len(rows) == 3


def test_seed0_second_phase_runs_only_the_cells_of_its_own_grid():
    """A folder filled by two commands (a grid, then one row on one task): the second command's seeds phase pins
    only its own cells, not every cell in the folder."""
    from fpt.study.sweep import _in_grid

    grid = {"task": "bit_xor", "variant": "lora", "optim.lr": "1e-4,1e-3", "seed": "0,1,2"}
    assert _in_grid({"task": "bit_xor", "variant": "lora", "seed": "0"}, grid)
    assert not _in_grid({"task": "bit_xor", "variant": "fpt", "seed": "0"}, grid)
    assert not _in_grid({"task": "digits", "variant": "lora"}, grid)
    assert _in_grid({"task": "digits", "freeze": "[ln]"}, {"task": "digits,bit_xor", "freeze": "[ln],[attn]"})


def test_seed0_second_phase_keeps_to_the_data_set_its_command_fixes(tmp_path):
    """Two commands into one folder that differ only by a fixed data.name (cpu_align's UEA sets): the second's seeds
    phase ran seeds 1 and 2 of ItalyPowerDemand at GunPoint's seed-0 choice, as extra runs."""
    from fpt.study import sweep

    def run(name, lr, val):
        d = tmp_path / f"data.name={name},optim.lr={lr},seed=0,task=uea,variant=fpt"
        d.mkdir()
        (d / "results.json").write_text(json.dumps({
            "status": "ok", "task": "uea", "seed": 0, "lr": float(lr), "val/acc": val, "test/acc": val, "label": "FPT",
            "overrides": {"data.name": name, "optim.lr": lr, "seed": "0", "task": "uea", "variant": "fpt"}}))

    run("GunPoint", "1e-4", 0.9), run("GunPoint", "1e-3", 0.5)  # GunPoint chooses 1e-4
    run("ItalyPowerDemand", "1e-4", 0.5), run("ItalyPowerDemand", "1e-3", 1.0)  # ItalyPowerDemand chooses 1e-3
    launched = []
    sweep._seed0_then_rest(launched.append, ["task=uea", "data.name=ItalyPowerDemand", "variant=fpt", "optim.lr=1e-4,1e-3",
                                             "seed=0,1,2"], tmp_path, "hydra.sweep.dir=x")
    phase2 = [a for a in launched if "seed=1,2" in a]
    assert len(phase2) == 1 and "optim.lr=1e-3" in phase2[0] and "data.name=ItalyPowerDemand" in phase2[0]


def test_the_report_says_which_precision_each_run_resolved(tmp_path):
    """trainer.precision=auto resolves per machine, so one page can mix bf16 and fp32 runs: the page counts them."""
    from fpt.study.report import report

    for name, precision in [("a", "bf16-mixed"), ("b", "bf16-mixed"), ("c", "32-true"), ("d", None)]:
        d = tmp_path / name
        d.mkdir()
        (d / "results.json").write_text(json.dumps({
            "status": "ok", "task": "bit_xor", "model": "fpt", "seed": 0, "lr": 1e-3, "val/acc": 0.8, "test/acc": 0.8,
            "precision": precision, "label": name, "overrides": {"variant": name}}))
    md = report(tmp_path).read_text()
    assert "trainer.precision (auto: bf16-mixed on bf16 hardware), runs: 32-true 1, bf16-mixed 2, not recorded 1." in md
    with open(tmp_path / "results.csv") as f:
        assert sorted(r["precision"] for r in csv.DictReader(f)) == ["", "32-true", "bf16-mixed", "bf16-mixed"]


def test_a_runs_recorded_chance_draws_the_chance_line_of_a_task_whose_classes_come_from_its_data(tmp_path):
    """UEA's class count is known only once the archive is read: the run records 1 / classes in results.json, and the
    report's rows (and so its plots) carry it without building the task again."""
    from fpt.study.bundle import from_runs
    from fpt.tasks.spec import TaskSpec

    assert TaskSpec(seq_len=4, num_classes=3, token_dim=2).chance == pytest.approx(1 / 3)
    assert TaskSpec(seq_len=4, num_classes=1, token_dim=2, objective="regression").chance is None
    for seed in (0, 1):
        d = tmp_path / f"s{seed}"
        d.mkdir()
        (d / "results.json").write_text(json.dumps({
            "status": "ok", "task": "uea", "model": "fpt", "seed": seed, "lr": 1e-3, "val/acc": 0.8, "test/acc": 0.7,
            "chance": 1 / 3, "label": None, "overrides": {"data.name": "ArrowHead", "seed": str(seed)}}))
    rows = from_runs(tmp_path).rows
    assert [r["chance"] for r in rows] == [pytest.approx(1 / 3)] * 2


def test_a_run_that_stopped_early_stays_at_its_last_validation_value_in_the_learning_curve():
    """Without it, the mean of the runs still going rises as the weaker seeds stop on their plateau (cpu_table1's
    frozen random trunk on XOR drew 100% at step 1,600 where its three seeds' test mean is 89.6)."""
    from fpt.study.figures import _mean_band

    weak, strong = {100: 0.6, 200: 0.7}, {100: 0.8, 200: 0.9, 300: 1.0}
    steps, mean, lo, hi = _mean_band([weak, strong], carry=True)
    assert steps == [100, 200, 300] and mean == pytest.approx([0.7, 0.8, 0.85]) and (lo[-1], hi[-1]) == (0.7, 1.0)
    assert _mean_band([weak, strong])[1][-1] == 1.0  # train loss: the runs that logged the step, as before


def test_the_parameter_efficiency_chart_draws_each_tasks_chance_on_the_0_to_100_scale(tmp_path, monkeypatch):
    from fpt.study import efficiency

    drawn = {}
    monkeypatch.setattr(efficiency, "save", lambda fig, path, tight=True: drawn.setdefault("fig", fig) and path)
    cells = [{"task": "bit_xor", "variant": "fpt", "params_used": 5570, "test_mean": 1.0, "test_std": 0.0, "metric": "acc"},
             {"task": "digits", "variant": "fpt", "params_used": 9000, "test_mean": 0.8, "test_std": 0.05, "metric": "acc"}]
    efficiency.plot(cells, tmp_path, "t", {"bit_xor": 0.5, "digits": 0.1})
    xor, digits = drawn["fig"].axes[:2]
    assert [list(line.get_ydata()) for line in xor.lines if line.get_linestyle() == ":"] == [[50.0, 50.0]]
    assert [list(line.get_ydata()) for line in digits.lines if line.get_linestyle() == ":"] == [[10.0, 10.0]]
    assert xor.get_ylim() == (0, 100.0) and "chance (1 / classes)" in [t.get_text() for t in drawn["fig"].legends[0].get_texts()]
