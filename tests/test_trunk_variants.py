"""Auto trunks through `fpt inspect`, variants and model.blocks; bad trunk inputs are one line, exit 2."""

import time

import pytest
import torch

from fpt.errors import FPTError
from tests.helpers import RMS_DECODER, auto_cfg, run_fpt, trainable_names, xor_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny trunks: a second thread only adds its wake-ups


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

    model = build_model(auto_cfg(zoo, "llama", "variant=output_only"), xor_spec())  # freeze includes pos: rotary has none
    assert trainable_names(model) == {"output.weight", "output.bias"}
    err = capsys.readouterr().err
    assert err.count("note: freeze group 'pos' matches no parameter of this trunk") == 1
    code, _, err = run_fpt(capsys, "inspect", "trunk=auto", f"trunk.path={zoo['llama']}", "freeze=attn,pso")
    assert code == 2 and "unknown freeze group 'pso'" in err and len(err.strip().splitlines()) == 1


def test_model_blocks_keeps_exactly_those_blocks_in_that_order(zoo):
    from fpt.models.build import build_model

    full = build_model(auto_cfg(zoo, "llama"), xor_spec())
    kept = build_model(auto_cfg(zoo, "llama", "model.blocks=[1,0]", "unfreeze.groups=ffn", "unfreeze.last=1"), xor_spec())
    layers, orig = kept.trunk.layers, full.trunk.layers
    assert len(layers) == 2 and kept.trunk.config.num_hidden_layers == 2
    assert torch.equal(layers[0].mlp.up_proj.weight, orig[1].mlp.up_proj.weight)
    assert torch.equal(layers[1].mlp.up_proj.weight, orig[0].mlp.up_proj.weight)
    assert kept.trunk_spec.kept == (1, 0) and "blocks [1, 0] of 2" in kept.trunk_spec.header()[1]
    assert kept.trunk.layers[1].mlp.up_proj.weight.requires_grad and not kept.trunk.layers[0].mlp.up_proj.weight.requires_grad
    one = build_model(auto_cfg(zoo, "gpt2", "model.blocks=[1]"), xor_spec())
    assert len(one.trunk.h) == 1 and one.trunk.config.n_layer == 1
    x, mask = torch.randn(2, 10, 1), torch.ones(2, 10, dtype=torch.bool)
    with torch.no_grad():
        assert torch.isfinite(one.eval()(x, mask)).all() and torch.isfinite(kept.eval()(x, mask)).all()
    depth = build_model(auto_cfg(zoo, "gpt2", "model.depth=1"), xor_spec())
    first = build_model(auto_cfg(zoo, "gpt2", "model.blocks=[0]"), xor_spec())
    assert depth.trunk.state_dict().keys() == first.trunk.state_dict().keys()


def test_t5_blocks_without_block_0_say_they_lose_the_positions(zoo, capsys):
    from fpt.models.build import build_model

    build_model(auto_cfg(zoo, "t5", "model.blocks=[1]"), xor_spec())
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

    from fpt.trunks.discover import structure_groups

    model = transformers.AutoModel.from_pretrained(zoo["llama"])
    model.register_parameter("mystery", torch.nn.Parameter(torch.zeros(3)))
    with pytest.raises(FPTError) as e:
        structure_groups(model, "layers")
    msg = str(e.value)
    assert "'mystery'" in msg and "trunk.groups" in msg and "\n" not in msg
    assert structure_groups(model, "layers", {"ffn": [r"mystery"]})["mystery"] == "ffn"
