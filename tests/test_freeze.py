"""The freeze maps, as a table: (architecture, freeze=...) -> exactly which tensors train."""

import re

import pytest

from fpt.errors import FPTError
from fpt.config.groups import GROUPS, parse_freeze
from fpt.models.freeze import inspect_table
from fpt.trunks import ARCHS, get_arch
from tests.helpers import tiny_cfg

IO = {"input.weight", "input.bias", "output.weight", "output.bias"}

# Trainable trunk tensors under the paper's FPT (freeze=attn,ffn), tiny trunks with 2 blocks.
FPT_TRAINABLE = {
    "gpt2": {"wpe.weight", "ln_f.weight", "ln_f.bias"}
    | {f"h.{i}.{ln}.{w}" for i in (0, 1) for ln in ("ln_1", "ln_2") for w in ("weight", "bias")},
    "bert": {"embeddings.position_embeddings.weight", "embeddings.token_type_embeddings.weight",
             "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"}
    | {f"encoder.layer.{i}.{p}.LayerNorm.{w}" for i in (0, 1) for p in ("attention.output", "output") for w in ("weight", "bias")},
    "t5": {"encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", "encoder.final_layer_norm.weight"}
    | {f"encoder.block.{i}.layer.{j}.layer_norm.weight" for i in (0, 1) for j in (0, 1)},
}


def _model(tiny, arch, freeze):
    from fpt.models.build import build_model
    from fpt.tasks.base import TaskSpec

    cfg = tiny_cfg(tiny, arch, f"freeze={freeze}")
    return build_model(cfg, TaskSpec(seq_len=10, token_dim=1, num_classes=2, readout="last_k", k=5))


def _trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("arch", sorted(FPT_TRAINABLE))
def test_fpt_trains_exactly_norms_positions_input_output(tiny, arch):
    model = _model(tiny, arch, "attn,ffn")
    assert _trainable(model) == IO | {f"trunk.{n}" for n in FPT_TRAINABLE[arch]}


@pytest.mark.parametrize("arch", sorted(FPT_TRAINABLE))
def test_every_trunk_tensor_is_claimed_by_exactly_one_group(tiny, arch):
    model = _model(tiny, arch, "attn,ffn")
    groups = get_arch(arch).groups
    for name, _ in model.trunk.named_parameters():
        hits = [g for g, pats in groups.items() if any(re.fullmatch(p, name) for p in pats)]
        assert len(hits) == 1, (name, hits)
    assert set(model.param_groups().values()) == {"attn", "ffn", "ln", "pos", "emb", "input", "output"}


@pytest.mark.parametrize("arch", sorted(FPT_TRAINABLE))
def test_full_finetuning_trains_all_but_the_unused_token_table(tiny, arch):
    model = _model(tiny, arch, "none")
    groups = model.param_groups()
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and {groups[n] for n in frozen} == {"emb"}


@pytest.mark.parametrize("arch", sorted(FPT_TRAINABLE))
def test_output_only(tiny, arch):
    model = _model(tiny, arch, "attn,ffn,ln,pos,input")
    assert _trainable(model) == {"output.weight", "output.bias"}


def test_group_semantics_per_architecture(tiny):
    """The groups hold what their names say, e.g. T5's pos is the relative bias, BERT's ffn output."""
    g = _model(tiny, "bert", "attn,ffn").param_groups()
    assert g["trunk.encoder.layer.1.output.dense.weight"] == "ffn"
    assert g["trunk.encoder.layer.1.attention.output.dense.weight"] == "attn"
    assert g["trunk.encoder.layer.1.output.LayerNorm.weight"] == "ln"
    g = _model(tiny, "t5", "attn,ffn").param_groups()
    assert g["trunk.encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"] == "pos"
    assert g["trunk.encoder.block.1.layer.1.DenseReluDense.wo.weight"] == "ffn"
    assert g["trunk.shared.weight"] == "emb"
    g = _model(tiny, "gpt2", "attn,ffn").param_groups()
    assert g["trunk.h.0.mlp.c_proj.weight"] == "ffn" and g["trunk.h.0.attn.c_proj.weight"] == "attn"
    assert g["trunk.wte.weight"] == "emb"


def test_bert_pooler_is_left_out(tiny):
    model = _model(tiny, "bert", "attn,ffn")
    assert not any("pooler" in n for n, _ in model.named_parameters())


def test_unknown_group_is_one_line_listing_the_valid_ones():
    with pytest.raises(FPTError) as e:
        parse_freeze(["attn", "atn"])
    msg = str(e.value)
    assert "'atn'" in msg and all(g in msg for g in GROUPS) and "\n" not in msg


def test_parse_freeze_forms():
    assert parse_freeze("attn,ffn") == ["attn", "ffn"]
    assert parse_freeze(["ln", "ln", "pos"]) == ["ln", "pos"]
    assert parse_freeze("none") == [] and parse_freeze([]) == []


def test_group_that_matches_nothing_is_an_error(tiny):
    from fpt.models.build import build_model
    from fpt.tasks.base import TaskSpec

    cfg = tiny_cfg(tiny, "gpt2", "model=lstm", "model.hidden=8", "model.layers=1", "freeze=attn")
    with pytest.raises(FPTError, match="'attn' matches no parameter.*rnn"):
        build_model(cfg, TaskSpec(seq_len=10, token_dim=1, num_classes=2, readout="last_k", k=5))


def test_inspect_table_lines_and_summary(tiny):
    model = _model(tiny, "gpt2", "attn,ffn")
    lines = inspect_table(model, model.param_groups()).splitlines()
    header, lines = lines[:5], lines[5:]  # what the trunk is (fpt.trunks.spec.TrunkSpec.header), then the table
    assert header[0] == "# trunk: GPT2Model (model_type gpt2, trunk.arch=gpt2); groups from the hand map"
    assert header[1:] == ["# blocks: h x 2 (all); each returns a tensor", "# widths: input 32, hidden 32",
                          "# positions: learned, limit 64", "# attention: causal"]
    assert len(lines) == len(list(model.named_parameters())) + 2
    wpe = [ln for ln in lines if ln.startswith("trunk.wpe.")]
    assert len(wpe) == 1 and re.fullmatch(r"trunk\.wpe\.weight\s+64x32\s+pos\s+trainable", wpe[0])
    wte = [ln for ln in lines if ln.startswith("trunk.wte.")]
    assert re.fullmatch(r"trunk\.wte\.weight\s+64x32\s+emb\s+frozen", wte[0])
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    assert lines[-2] == f"trainable {trainable:,} || all {total:,} || trainable% {100 * trainable / total:.4f}"
    assert lines[-1].startswith(f"used by this task 770 of {trainable:,} trainable")  # 10 tokens: 10 of 64 position rows


def test_registry_knows_the_hand_maps_auto_and_the_papers_other_trunks():
    assert set(ARCHS) == {"gpt2", "bert", "t5", "auto", "vit", "longformer"}
    assert all(get_arch(a).groups is not None for a in ("gpt2", "bert", "t5"))  # hand maps
    assert all(get_arch(a).groups is None for a in ("auto", "vit", "longformer"))  # found from the structure


def test_arch_is_plain_data_that_pickles_as_it_is():
    import dataclasses
    import pickle

    for name in ARCHS:
        a = get_arch(name)
        assert pickle.loads(pickle.dumps(a)) == a and "__reduce__" not in vars(type(a))  # no pickling workaround
        assert not any(callable(getattr(a, f.name)) for f in dataclasses.fields(a))


def test_absent_group_is_a_note_for_trunks_an_error_for_baselines_and_never_stays_frozen(capsys):
    import torch

    from fpt.models.freeze import apply_freeze

    net = torch.nn.ModuleDict({"a": torch.nn.Linear(2, 2), "b": torch.nn.Linear(2, 2)})
    groups = {"a.weight": "ln", "a.bias": "ln", "b.weight": "attn", "b.bias": "attn"}
    apply_freeze(net, groups, ["pos"], absent="note", never=["b.bias"])
    assert "note: freeze group 'pos' matches no parameter of this trunk" in capsys.readouterr().err
    assert {n for n, p in net.named_parameters() if p.requires_grad} == {"a.weight", "a.bias", "b.weight"}
    with pytest.raises(FPTError, match="'pos' matches no parameter"):
        apply_freeze(net, groups, ["pos"])
