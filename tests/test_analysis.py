"""Looking inside: CKA/RSA, attention maps and their statistics, weight statistics, layer ablation, `fpt analyze`."""

import csv
import json
import math

import pytest
import torch

from fpt.analysis import examples, open_run
from fpt.analysis.ablate import evaluate_ablation, skipped
from fpt.analysis.attention import attention_distance, attention_entropy, attention_maps
from fpt.analysis.similarity import linear_cka, rsa
from fpt.analysis.weights import analyze_weights
from fpt.cli import main as fpt_main
from fpt.errors import FPTError
from fpt.models.build import build_model
from fpt.run.train import train
from fpt.trunks import get_arch
from fpt.trunks.base import keep_blocks
from fpt.tasks.base import TaskSpec
from tests.helpers import run_fpt, tiny_cfg

XOR = TaskSpec(seq_len=10, token_dim=1, num_classes=2, readout="last_k", k=5)


@pytest.fixture(scope="module")
def run_dir(tiny, tmp_path_factory):
    """A tiny GPT-2 FPT run on bit XOR, 6 steps: enough for a checkpoint and trained tensors."""
    d = tmp_path_factory.mktemp("an_run")
    train(tiny_cfg(tiny, "gpt2", "trainer.max_steps=6", "trainer.val_check_interval=3"), d)
    return d


@pytest.fixture(scope="module")
def strong_run(tmp_path_factory):
    """The same 6-step run on a tiny GPT-2 initialised at std 0.3: its blocks move the residual stream enough
    to flip predictions (at the usual std 0.02 the embeddings dominate every layer of so small a trunk)."""
    from transformers import GPT2Config, GPT2Model

    root = tmp_path_factory.mktemp("strong")
    torch.manual_seed(7)
    GPT2Model(GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=64, bos_token_id=0, eos_token_id=0,
                         initializer_range=0.3)).save_pretrained(root / "gpt2")
    # input gain 1.0: the 2021 gain of 1.41 makes the embeddings outweigh what so small a block adds
    train(tiny_cfg({"gpt2": root / "gpt2"}, "gpt2", "model.input_gain=1.0", "trainer.max_steps=6", "trainer.val_check_interval=3"), root / "run")
    return root / "run"


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --- CKA and RSA ---------------------------------------------------------------------------------------
def test_linear_cka_is_one_for_itself_invariant_to_rotation_and_scale_and_low_for_unrelated():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 16, generator=g) @ torch.randn(16, 32, generator=g)  # correlated features, rank 16
    q, _ = torch.linalg.qr(torch.randn(32, 32, generator=g))  # a random orthogonal map
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-9)
    assert linear_cka(x, 3.7 * x @ q) == pytest.approx(1.0, abs=1e-9)
    assert linear_cka(x, x + 5.0) == pytest.approx(1.0, abs=1e-9)  # centring removes offsets
    unrelated = linear_cka(x, torch.randn(200, 32, generator=g))
    assert unrelated < 0.35
    # an informative middle ground: half the features shared
    mixed = linear_cka(x, torch.cat([x[:, :16], torch.randn(200, 16, generator=g) * x[:, 16:].std()], 1))
    assert unrelated < mixed < 1.0
    assert linear_cka(x, x[:, :1] * torch.randn(1, 8, generator=g)) < 1.0  # a rank-1 projection is not the same code


def test_rsa_is_one_for_identical_and_for_monotone_rescaled_representations_and_near_zero_for_noise():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(60, 12, generator=g)
    assert rsa(x, x) == pytest.approx(1.0, abs=1e-12)
    assert rsa(x, 2.0 * x + 1.0) == pytest.approx(1.0, abs=1e-12)  # Pearson RDMs ignore per-example affine maps
    assert abs(rsa(x, torch.randn(60, 12, generator=g))) < 0.1


# --- attention -----------------------------------------------------------------------------------------
def test_entropy_and_distance_on_hand_made_maps():
    t = 6
    mask = torch.ones(1, t, dtype=torch.bool)
    uniform = torch.full((1, 1, t, t), 1.0 / t)
    eye = torch.eye(t).expand(1, 1, t, t)
    first = torch.zeros(1, 1, t, t)
    first[..., 0] = 1.0  # every query looks at position 0
    assert attention_entropy(uniform, mask).item() == pytest.approx(math.log(t))
    assert attention_entropy(eye, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert attention_distance(eye, mask).item() == pytest.approx(0.0)
    assert attention_distance(first, mask).item() == pytest.approx((t - 1) / 2)  # mean of |i - 0|
    assert attention_distance(uniform, mask).item() == pytest.approx(sum(abs(i - j) for i in range(t) for j in range(t)) / t**2)
    # padded queries are left out: garbage rows behind the mask change nothing
    short = torch.tensor([[True, True, True, False, False, False]])
    mixed = eye.clone()
    mixed[..., 3:, :] = 1.0 / t
    assert attention_entropy(mixed, short).item() == pytest.approx(0.0, abs=1e-6)
    assert attention_distance(mixed, short).item() == pytest.approx(0.0)


@pytest.mark.parametrize("arch", ["gpt2", "bert", "t5"])
def test_eager_attention_maps_exist_rows_sum_to_one_and_masked_keys_get_nothing(tiny, arch):
    model = build_model(tiny_cfg(tiny, arch), XOR).eval()
    assert model.trunk.config._attn_implementation != "eager"  # sdpa by default: it would return no maps
    x = torch.randn(3, 10, 1)
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[1, 7:] = False  # example 1 has 3 pad tokens
    maps = attention_maps(model, x, mask)
    assert len(maps) == 2 and maps[0].shape == (3, 2, 10, 10)
    for a in maps:
        real_rows = a[mask[:, None, :, None].expand_as(a)].reshape(-1, 10)
        assert torch.allclose(real_rows.sum(-1), torch.ones(len(real_rows)), atol=1e-5)
        assert a[1, :, :7, 7:].abs().max() < 1e-6  # real queries give pad keys ~0
        if arch == "gpt2":
            assert torch.triu(a, diagonal=1).abs().max() < 1e-6  # causal: no future keys
        else:
            assert a[0, :, :, -1].min() > 0  # bidirectional: the last real key is seen by all


# --- weights -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_weight_table_has_a_row_per_tensor_and_standardized_tensors_sit_at_xavier_scale(tiny, tmp_path):
    over = ["trunk=gpt2", f"trunk.path={tiny['gpt2']}"]
    files, scale = analyze_weights([*over, "trunk.init=standardized", "trunk.standardize=[pos,attn]"], str(tmp_path))
    rows = read_csv(files[0])
    model = build_model(tiny_cfg(tiny, "gpt2"), XOR).trunk
    assert [r["name"] for r in rows] == [n for n, _ in model.named_parameters()]
    assert {r["group"] for r in rows} == {"emb", "pos", "attn", "ffn", "ln"}
    for r in rows:
        p = dict(model.named_parameters())[r["name"]]
        assert int(r["numel"]) == p.numel()
        if r["group"] in ("pos", "attn") and p.dim() == 2:
            assert float(r["std_over_xavier"]) == pytest.approx(1.0, rel=1e-3), r["name"]
            assert abs(float(r["mean"])) < 1e-6
    ffn = next(r for r in rows if r["name"] == "h.0.mlp.c_fc.weight")  # not standardized: keeps its own scale
    assert float(ffn["std"]) == pytest.approx(model.h[0].mlp.c_fc.weight.std().item(), rel=1e-4)
    assert float(ffn["l2"]) == pytest.approx(model.h[0].mlp.c_fc.weight.norm().item(), rel=1e-5)
    assert float(ffn["fro_per_elem"]) == pytest.approx(float(ffn["l2"]) / float(ffn["numel"]))
    wte, wpe = model.wte.weight, tiny_wpe_standardized(model)
    assert scale["ratio_std"] == pytest.approx(wte.std().item() / wpe.std().item(), rel=1e-4)
    assert scale["ratio_row_norm"] == pytest.approx((wte.norm(dim=1).mean() / wpe.norm(dim=1).mean()).item(), rel=1e-4)
    assert files[1].stat().st_size > 5000 and json.loads(files[2].read_text())["position"] == "wpe.weight"
    _, t5 = analyze_weights(["trunk=t5", f"trunk.path={tiny['t5']}"], str(tmp_path))
    assert t5["position"] is None and "ratio_std" not in t5  # T5's positions are an attention bias, not an added table


def tiny_wpe_standardized(model):
    from fpt.trunks.init import xavier_std

    w = model.wpe.weight.detach()
    return (w - w.mean()) / w.std() * xavier_std(w.shape)


# --- ablation ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["gpt2", "bert", "t5"])
def test_skipping_the_last_block_equals_the_model_cut_to_its_first_block(tiny, arch):
    cfg = tiny_cfg(tiny, arch)
    model = build_model(cfg, XOR).eval()
    x, mask = torch.randn(4, 10, 1), torch.ones(4, 10, dtype=torch.bool)
    with torch.no_grad():
        full = model(x, mask)
        with skipped(model, 1, side_outputs=arch == "t5"):
            skip = model(x, mask)
        keep_blocks(model.trunk, get_arch(arch), 1)
        cut = model(x, mask)
    assert torch.allclose(skip, cut, atol=1e-5)
    assert not torch.allclose(skip, full, atol=1e-3)


def test_t5_keeps_its_relative_position_bias_when_block_0_is_skipped(tiny):
    model = build_model(tiny_cfg(tiny, "t5"), XOR).eval()
    x, mask = torch.randn(2, 10, 1), torch.ones(2, 10, dtype=torch.bool)
    with torch.no_grad(), skipped(model, 0, side_outputs=True):
        kept = model(x, mask)
        model.trunk.encoder.block[0].block.layer[0].SelfAttention.relative_attention_bias.weight.mul_(0)
        zeroed = model(x, mask)  # block 1 sees the bias block 0 computes: zeroing it must show
    assert not torch.allclose(kept, zeroed, atol=1e-4)


@pytest.mark.slow
def test_layer_ablation_report_has_a_row_per_layer_and_changes_predictions(strong_run):
    base = json.loads((strong_run / "results.json").read_text())
    report = evaluate_ablation(str(strong_run / "checkpoints" / "best.ckpt"), [0, 1], None)
    assert report["test/acc"] == pytest.approx(base["test/acc"], abs=1e-6)  # the intact model scores what training reported
    assert [r["layer"] for r in report["ablations"]] == [0, 1]
    for r in report["ablations"]:
        assert r["drop"] == pytest.approx(report["test/acc"] - r["test/acc"])
        assert r["changed"] > 0.02 and r["logit_shift"] > 0.01
    rows = read_csv(strong_run / "checkpoints" / "best.ablation.csv")
    assert [r["layer"] for r in rows] == ["none", "0", "1"]
    assert json.loads((strong_run / "checkpoints" / "best.ablation.json").read_text()) == report
    with pytest.raises(FPTError, match="index 2 is out of range; this trunk has 2"):
        evaluate_ablation(str(strong_run), [2], None)


# --- fpt analyze end to end ----------------------------------------------------------------------------
@pytest.mark.slow
def test_analyze_attention_writes_grids_and_stats(run_dir, tmp_path, capsys):
    # hydra.run.dir is out='s other name, as for fpt train
    code, out, err = run_fpt(capsys, "analyze", "attention", f"run={run_dir}", "layers=0,1", "heads=[1]", "examples=2", "n=20", f"hydra.run.dir={tmp_path}")
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attention_ex0.png", "attention_ex1.png", "attention_stats.csv", "attention_stats.png"]
    rows = read_csv(tmp_path / "attention_stats.csv")
    assert len(rows) == 2 * (2 + 1)  # layers x (heads + mean)
    r = open_run(run_dir)
    batch = examples(r.task, "test", 20)
    a = attention_maps(r.model, batch["x"], batch["mask"])[1]
    want = attention_entropy(a, batch["mask"])
    got = [float(x["entropy"]) for x in rows if x["layer"] == "1" and x["head"] != "mean"]
    assert got == pytest.approx(want.tolist(), rel=1e-5)
    causal_ceiling = sum(math.log(i + 1) for i in range(10)) / 10  # GPT-2's query i sees i + 1 keys
    assert float(rows[0]["uniform_entropy"]) == pytest.approx(causal_ceiling)
    assert all(0 < float(x["entropy"]) <= causal_ceiling + 1e-6 for x in rows)


def test_analyze_similarity_of_a_run_with_itself_is_one_on_the_diagonal(run_dir, tmp_path, capsys):
    code, _, err = run_fpt(capsys, "analyze", "similarity", f"a={run_dir}", f"b={run_dir}", "n=64", f"out={tmp_path}")
    assert code == 0, err
    rows = read_csv(tmp_path / f"similarity_{run_dir.name}_mean.csv")
    assert len(rows) == 3 * 3  # (embeddings + 2 blocks) squared
    cell = {(r["layer_a"], r["layer_b"]): (float(r["cka"]), float(r["rsa"])) for r in rows}
    for (i, j), (cka, rs) in cell.items():
        if i == j:
            assert cka == pytest.approx(1.0, abs=1e-6) and rs == pytest.approx(1.0, abs=1e-6)
        assert cell[j, i] == pytest.approx((cka, rs), abs=1e-9)  # the same model on both sides: symmetric
    assert (tmp_path / f"similarity_{run_dir.name}_mean.png").stat().st_size > 5000


@pytest.mark.slow
def test_analyze_similarity_against_a_bare_trunk_and_probe(run_dir, strong_run, tmp_path, capsys):
    code, _, err = run_fpt(capsys, "analyze", "similarity", f"a={strong_run}", "b=trunk", "trunk.init=random", "n=64", "pool=flat", f"out={tmp_path / 's'}")
    assert code == 0, err
    cka = {(r["layer_a"], r["layer_b"]): float(r["cka"]) for r in read_csv(tmp_path / "s" / "similarity_trunk_gpt2_random_flat.csv")}
    assert len(cka) == 9 and all(0 < v <= 1 + 1e-9 for v in cka.values())
    assert cka["2", "2"] < 0.95  # a freshly drawn trunk computes something else from the same embedded inputs
    code, _, err = run_fpt(capsys, "analyze", "probe", f"run={run_dir}", "n=128", "targets=2", f"out={tmp_path / 'p'}")
    assert code == 0, err
    rows = read_csv(tmp_path / "p" / "probe_mean.csv")
    assert [r["layer"] for r in rows] == ["0", "1", "2"]
    assert all(0.3 < float(r["probe_acc"]) <= 1 and 0.4 < float(r["chance"]) < 0.65 for r in rows)
    assert (tmp_path / "p" / "probe_mean.png").is_file()


def test_weights_plot_names_layers_not_tensor_indices():
    from fpt.analysis.weights import layer_name, layer_ticks

    assert layer_name("h.3.attn.c_attn.weight", "attn") == "block 3 attn"
    assert layer_name("encoder.layer.11.output.dense.bias", "ffn") == "block 11 ffn"
    assert layer_name("wpe.weight", "pos") == "pos wpe" and layer_name("ln_f.bias", "ln") == "ln ln_f"
    rows = [{"name": n, "group": g} for n, g in [("wte.weight", "emb"), ("h.0.ln_1.weight", "ln"), ("h.0.ln_1.bias", "ln"),
                                                  ("h.0.attn.c_attn.weight", "attn"), ("h.1.ln_1.weight", "ln")]]
    assert layer_ticks(rows) == {0: "emb wte", 1: "block 0 ln", 3: "block 0 attn", 4: "block 1 ln"}


@pytest.mark.slow
def test_analyze_weights_and_ablate_print_and_write(run_dir, tiny, tmp_path, capsys):
    code, out, err = run_fpt(capsys, "analyze", "weights", "trunk=bert", f"trunk.path={tiny['bert']}", f"out={tmp_path}")
    assert code == 0, err
    assert "token embedding / position scale" in out
    assert len(read_csv(tmp_path / "weights_bert_pretrained.csv")) == len(list(build_model(tiny_cfg(tiny, "bert"), XOR).trunk.parameters()))
    code, out, err = run_fpt(capsys, "analyze", "ablate", f"run={run_dir}", "layers=[1]")
    assert code == 0, err
    assert "skipped block" in out and len(read_csv(run_dir / "checkpoints" / "best.ablation.csv")) == 2


@pytest.mark.slow
def test_bad_input_is_one_line(run_dir, tiny, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    cases = [
        (("attention", f"run={tmp_path / 'nope'}"), "no run directory"),
        (("attention", f"run={tmp_path / 'empty'}"), "has no checkpoints/best.ckpt"),
        (("attention", f"run={run_dir}", "layers=[0,5]"), "layers: index 5 is out of range"),
        (("attention", f"run={run_dir}", "heads=[x]"), "heads must be an index, a list of indices ([0,5]) or all, got ['x']"),
        (("similarity", f"a={run_dir}", f"b={run_dir}", "pool=max"), "pool must be mean or flat, got 'max'"),
        (("probe", f"run={run_dir}", "n=0"), "n must be a positive integer, got 0"),
        (("ablate", f"run={run_dir}", "layers=[0]", f"out={tmp_path}"), "beside the checkpoint; out= does not apply"),
        (("attention", f"run={run_dir}", "layer=[0]"), "unknown option 'layer'"),
        (("weights", "trunk=nope"), "unknown trunk 'nope'"),
        (("similarity", f"a={run_dir}", "b=trunk:nope"), "unknown trunk 'nope'"),
        (("nope",), "unknown analysis 'nope'"),
    ]
    for args, needle in cases:
        code, _, err = run_fpt(capsys, "analyze", *args)
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, (args, err)
    lstm = tmp_path / "lstm"
    train(tiny_cfg(tiny, "gpt2", "model=lstm", "model.hidden=8", "model.layers=1", "trainer.max_steps=2", "trainer.val_check_interval=2"), lstm)
    capsys.readouterr()  # the training run's own output
    code, _, err = run_fpt(capsys, "analyze", "attention", f"run={lstm}")
    assert code == 2 and "needs a transformer trunk" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_fpt_eval_with_ablate_layers_reports_the_drop_per_block(run_dir, capsys):
    code = fpt_main(["eval", f"ckpt={run_dir / 'checkpoints' / 'best.ckpt'}", "ablate.layers=[0,1]"])
    out = capsys.readouterr().out
    assert code == 0
    assert "skipped block" in out and len(read_csv(run_dir / "checkpoints" / "best.ablation.csv")) == 3  # none, 0, 1
