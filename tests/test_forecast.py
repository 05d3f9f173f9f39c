"""task=forecast: the standard splits on a synthetic ETTh1 in the real layout, a run reporting MSE and MAE, bad CSVs;
the two heads (flatten: One Fits All's, mean) and the One Fits All experiment."""

import csv

import numpy as np
import pandas as pd
import pytest
import torch
from einops import rearrange

from fpt.config import compose
from fpt.errors import FPTError
from fpt.models.build import build_model
from fpt.run.train import train
from fpt.tasks.base import META_KEYS, build_task
from fpt.tasks.forecast import Forecast, borders
from tests.helpers import FAST, compose_cfg


@pytest.fixture(scope="module")
def ett(tmp_path_factory):
    root = tmp_path_factory.mktemp("ett")
    Forecast.write_data(root, name="ETTh1")
    return root


def test_the_synthetic_file_has_the_real_layout_and_the_ett_split(ett):
    header = (ett / "ETTh1.csv").read_text().splitlines()[:2]
    assert header[0] == "date,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT" and header[1].startswith("2016-07-01 00:00:00,")
    assert len((ett / "ETTh1.csv").read_text().splitlines()) == 17420 + 1
    assert borders("ETTh1", 17420, 96) == [(0, 8640), (8544, 11520), (11424, 14400)]  # 12/4/4 months of 720 hours
    assert borders("weather", 1000, 96) == [(0, 700), (604, 800), (704, 1000)]  # 7:1:2
    cfg = compose_cfg("task=forecast", "data.name=ETTh1", f"data.root={ett}", "task.seq_len=96")
    task = build_task(cfg.task, 0, cfg.data)
    train_rows = task.arrays()["train"]
    assert train_rows.shape == (8640, 7) and abs(train_rows.mean()) < 1e-4  # standardised by the training rows
    assert len(task.val_dataloader().dataset) == (2880 + 96 - 96 - 96 + 1) * 7  # every window x channel


@pytest.mark.slow
def test_a_forecast_run_reports_test_mse_and_mae(tiny, ett, tmp_path):
    fast = [o for o in FAST if not o.startswith("task.")]
    cfg = compose_cfg("trunk=gpt2", f"trunk.path={tiny['gpt2']}", *fast, "task=forecast", "data.name=ETTh1", f"data.root={ett}",
                      "task.seq_len=96", "task.horizon=96", "trainer.precision=32-true", "trainer.max_steps=40",
                      "trainer.val_check_interval=20", "freeze=none", "eval.train_acc=false")
    res = train(cfg, tmp_path / "run")
    assert res["objective"] == "forecast" and res["metric"] == "mse" and res["mode"] == "min"
    assert 0 < res["test/mse"] < 1.0 and 0 < res["test/mae"] < 1.0  # better than predicting the mean (1.0 standardised)


def test_a_csv_without_its_date_column_or_too_short_is_one_line(tmp_path):
    (tmp_path / "nodate.csv").write_text("a,b\n" + "\n".join(f"{i},{i}" for i in range(300)) + "\n")
    (tmp_path / "short.csv").write_text("date,a\n" + "\n".join(f"2020-01-01 {i % 24:02d}:00:00,{i}" for i in range(100)) + "\n")
    for name, says in (("nodate", "no date column (the first column 'a' holds no dates)"),
                       ("short", "fewer than task.seq_len + task.horizon = 192")):
        cfg = compose_cfg("task=forecast", f"data.name={name}", f"data.root={tmp_path}", "task.seq_len=96")
        with pytest.raises(FPTError) as e:
            build_task(cfg.task, 0, cfg.data)
        assert says in str(e.value) and f"{name}.csv" in str(e.value) and "\n" not in str(e.value)


# --- the heads: flatten (One Fits All's Linear(patches x hidden, horizon)) and mean ---------------------------------
@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A 600-row hourly CSV of two noisy cycles (7:1:2 split): small enough for a run in seconds."""
    root, t = tmp_path_factory.mktemp("toy"), np.arange(600)
    rng = np.random.default_rng(0)
    pd.DataFrame({"date": pd.date_range("2020-01-01", periods=600, freq="h").strftime("%Y-%m-%d %H:%M:%S"),
                  "a": np.sin(2 * np.pi * t / 24) + 0.1 * rng.normal(size=600),
                  "b": np.cos(2 * np.pi * t / 12) + 0.1 * rng.normal(size=600)}).to_csv(root / "toy.csv", index=False)
    return root


def toy_run(tiny, toy, out, *overrides):
    """30 steps of the tiny GPT-2 on the toy CSV (48 steps in, 12 out, 12 patches): results and the logged train losses."""
    fast = [o for o in FAST if not o.startswith("task.")]
    cfg = compose_cfg("trunk=gpt2", f"trunk.path={tiny['gpt2']}", *fast, "task=forecast", "data.name=toy", f"data.root={toy}",
                      "task.seq_len=48", "task.horizon=12", "task.patch_len=8", "task.stride=4", "trainer.precision=32-true",
                      "trainer.max_steps=30", "trainer.val_check_interval=30", "trainer.log_every_n_steps=5", "eval.train_acc=false",
                      *overrides)
    res = train(cfg, out)
    with open(out / "metrics.csv") as f:
        losses = [float(r["train/loss"]) for r in csv.DictReader(f) if r["train/loss"]]
    return res, losses


@pytest.mark.parametrize("horizon", [96, 192, 336, 720])
def test_the_flatten_head_has_one_fits_alls_parameter_count(horizon):
    spec = Forecast(seq_len=336, horizon=horizon, patch_len=16, stride=8).spec  # One Fits All's ETTh1 setting
    assert spec.seq_len == 42 and spec.readout == "flatten"  # (336 - 16) // 8 + 1 patches, plus one of the stride's pad
    for readout, width in (("flatten", 768 * 42), ("mean", 768)):
        cfg = compose_cfg("task=forecast", "model=no_trunk", "model.hidden=768", f"task.readout={readout}")
        head = build_model(cfg, Forecast(seq_len=336, horizon=horizon, readout=readout).spec).output
        assert tuple(head.weight.shape) == (horizon, width)
    # their out_layer: nn.Linear(d_model * patch_num, pred_len), d_model 768, patch_num 42
    assert sum(p.numel() for p in build_model(compose_cfg("task=forecast", "model=no_trunk", "model.hidden=768"),
                                              spec).output.parameters()) == 768 * 42 * horizon + horizon


def test_the_flatten_head_reads_every_patch_in_order_and_its_dropout_only_in_training():
    spec = Forecast(seq_len=48, horizon=12, patch_len=8, stride=4, head_dropout=0.5).spec
    model = build_model(compose_cfg("task=forecast", "model=no_trunk", "model.hidden=16"), spec).eval()
    x, mask = torch.randn(3, spec.seq_len, 8), torch.ones(3, spec.seq_len, dtype=torch.bool)
    tokens = model.input(x)  # no trunk: the readout reads the input layer's tokens (b, 12, 16)
    torch.testing.assert_close(model.features(x, mask), tokens.reshape(3, -1))  # One Fits All's reshape(B*M, -1)
    torch.testing.assert_close(model(x, mask)[..., 0], model.output(rearrange(tokens, "b p h -> b (p h)")))
    model.train()
    assert not torch.equal(model.head(model.features(x, mask)), model.head(model.features(x, mask)))  # Dropout(0.5)
    assert isinstance(model.head_drop, torch.nn.Dropout) and model.head_drop.p == 0.5


def test_the_mean_head_gives_the_numbers_it_gave_before(tiny, toy, tmp_path):
    res, _ = toy_run(tiny, toy, tmp_path / "run", "task.readout=mean")
    # measured with this run before the flatten head existed (commit b56454f, task.readout=mean then the default)
    assert res["test/mse"] == pytest.approx(0.9639542698860168, rel=1e-4)
    assert res["test/mae"] == pytest.approx(0.8767194151878357, rel=1e-4)


def test_both_heads_train_and_flatten_forecasts_the_toy_cycles_better(tiny, toy, tmp_path):
    got = {r: toy_run(tiny, toy, tmp_path / r, f"task.readout={r}", "optim.lr=1e-2") for r in ("flatten", "mean")}
    for readout, (res, losses) in got.items():
        assert len(losses) == 6 and losses[-1] < 0.8 * losses[0], (readout, losses)
    assert got["flatten"][0]["test/mse"] < 0.5 * got["mean"][0]["test/mse"]  # measured: 0.058 vs 0.673


def test_flatten_is_refused_where_examples_may_differ_in_length():
    with pytest.raises(FPTError) as e:  # bit_xor reads its last 5 positions; sequence tasks pad to their batch's longest
        build_model(compose_cfg("task=bit_xor", "model=no_trunk", "model.readout=flatten"), build_task(compose_cfg("task=bit_xor").task, 0).spec)
    assert "model.readout=flatten needs a task whose examples all have the same length" in str(e.value) and "\n" not in str(e.value)
    from fpt.run.preflight import check_task

    with pytest.raises(FPTError, match="task.readout must be last or mean, got 'flatten'"):
        check_task(compose_cfg("task=uea", "task.readout=flatten").task)


# --- One Fits All's whole long-horizon recipe: configs/experiment/ofa_etth1.yaml ----------------------------------
def test_the_one_fits_all_experiment_composes_their_etth1_recipe():
    cfg = compose(["experiment=ofa_etth1"], with_hydra=True)
    t = cfg.task
    assert (t.seq_len, t.patch_len, t.stride, t.norm, t.channel_independent, t.readout, t.head_dropout, t.batch_size) == \
        (336, 16, 8, "instance", True, "flatten", 0.0, 256)
    assert (cfg.data.name, cfg.trunk.name, cfg.trunk.init, cfg.model.depth, cfg.model.input_dropout) == ("ETTh1", "gpt2", "pretrained", 6, 0.0)
    assert list(cfg.freeze) == ["attn", "ffn"] and cfg.optim.lr == 1e-4
    assert (cfg.trainer.max_steps, cfg.trainer.max_epochs, cfg.trainer.gradient_clip_val) == (-1, 10, None)
    assert dict(cfg.hydra.sweeper.params) == {"task.horizon": "96,192,336,720", "seed": "0,1,2"}
    from fpt.config.sections import validate
    from fpt.run.preflight import check_task

    validate(cfg)  # every option within its schema
    check_task(cfg.task)


@pytest.mark.slow
def test_the_one_fits_all_experiment_trains_what_they_train():
    """GPT-2 built from its config (no weights offline): 6 blocks, and only layernorms and positions train in the trunk,
    their `'ln' in name or 'wpe' in name`, beside the input layer and the 42 x 768 -> 96 head."""
    cfg = compose_cfg("experiment=ofa_etth1", "trunk.init=random")
    model = build_model(cfg, Forecast(**{k: v for k, v in cfg.task.items() if k not in META_KEYS}).spec)
    trained = {n.removeprefix("trunk.") for n, p in model.named_parameters() if p.requires_grad}
    trunk = {n for n in trained if not n.startswith(("input.", "output."))}
    assert trunk == {n for n, _ in model.trunk.named_parameters() if "ln" in n or "wpe" in n} and len(model.trunk.h) == 6
    assert {"input.weight", "output.weight"} <= trained and tuple(model.output.weight.shape) == (96, 42 * 768)
