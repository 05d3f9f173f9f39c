"""fpt export (fpt/analysis/export.py): a LoRA run's trunk, merged, reloads with plain transformers and computes what the run's
trunk computes; the input/output layers beside it are the run's; results.json records the PEFT method."""

import json

import pytest
import torch

from fpt.cli import main
from fpt.run.train import train
from tests.helpers import tiny_cfg

R = 4


@pytest.fixture(scope="module")
def lora_run(tiny, tmp_path_factory):
    run = tmp_path_factory.mktemp("lora_run")
    cfg = tiny_cfg(tiny, "gpt2", "variant=lora", f"peft.r={R}", "trainer.precision=32-true", "optim.lr=3e-3",
                   "trunk.dropout=0.0", "trainer.max_steps=20", "trainer.val_check_interval=20", "eval.train_acc=false")
    train(cfg, run)
    return run


@pytest.mark.slow
def test_results_record_the_peft_method(lora_run):
    res = json.loads((lora_run / "results.json").read_text())
    assert (res["peft"], res["peft_r"]) == ("lora", R)


def test_export_reloads_with_automodel_and_computes_the_same(lora_run, tmp_path, capsys):
    from safetensors.torch import load_file
    from transformers import AutoModel

    from fpt.analysis import open_run

    out = tmp_path / "hf"
    assert main(["export", str(lora_run), f"out={out}"]) == 0
    assert "wrote" in capsys.readouterr().out
    hf = AutoModel.from_pretrained(out).eval()
    assert not any("lora" in n or "base_layer" in n for n, _ in hf.named_parameters())
    model = open_run(lora_run).model  # the trained run with its LoRA layers, unmerged
    b = model.trunk.h[0].attn.c_attn.lora_B.default.weight
    assert float(b.abs().sum()) > 0  # training moved B off zero: the merge changes the weights
    x, mask = torch.randn(3, model.spec.seq_len, model.spec.token_dim), torch.ones(3, model.spec.seq_len, dtype=torch.long)
    mask[1, 5:] = 0
    with torch.no_grad():
        e = model.input(x)
        want = model.trunk(inputs_embeds=e, attention_mask=mask).last_hidden_state
        got = hf(inputs_embeds=e, attention_mask=mask).last_hidden_state
    assert torch.allclose(got, want, atol=1e-5)
    layers = load_file(str(out / "fpt_layers.safetensors"))
    assert set(layers) == {"input.weight", "input.bias", "output.weight", "output.bias"}
    assert torch.equal(layers["output.weight"], model.output.weight)
    meta = json.loads((out / "fpt_export.json").read_text())
    assert (meta["peft"], meta["input"], meta["token_dim"]) == ("lora", "linear", model.spec.token_dim)


def test_export_help_and_bad_input(tmp_path, capsys):
    assert main(["export", "--help"]) == 0
    assert "AutoModel.from_pretrained" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "nope"), f"out={tmp_path / 'o'}"]) == 2
    assert "no run directory" in capsys.readouterr().err
    assert main(["export", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing out=DIR" in err[0]
