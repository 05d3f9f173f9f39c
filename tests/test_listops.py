"""ListOps: LRA-format files, the fixed vocabulary, the generator's labels, the token cache, training."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import fpt.tasks.listops as lo
from fpt.errors import FPTError
from fpt.tasks.listops import TOKENS, ListOps, generate, tokenize
from tests.helpers import LISTOPS_SMALL, tiny_cfg

def _task(root: Path, data: dict | None = None, **kw) -> ListOps:
    task = ListOps(data={"root": str(root), **(data or {})}, **kw)
    task.check()
    return task


def reference_value(source: str) -> int:
    """Evaluate an LRA source string with a stack, independently of tasks.listops."""
    stack = [[]]
    for tok in source.split():
        if tok in ("(", ")"):
            continue
        if tok.startswith("["):
            stack.append([tok])
        elif tok == "]":
            op, *args = stack.pop()
            s = sorted(args)
            value = {"[MIN": s[0], "[MAX": s[-1], "[SM": sum(s) % 10, "[MED": (s[(len(s) - 1) // 2] + s[len(s) // 2]) // 2}[op]
            stack[-1].append(value)
        else:
            stack[-1].append(int(tok))
    assert len(stack) == 1 and len(stack[0]) == 1, source
    return stack[0][0]


def lra_length(source: str) -> int:
    """Operators + values + closers: every token but the parentheses."""
    return sum(t not in ("(", ")") for t in source.split())


def test_written_files_are_lra_tsvs_with_correct_labels(listops_root):
    d = listops_root / "listops"
    assert sorted(p.name for p in d.glob("*.tsv")) == ["basic_test.tsv", "basic_train.tsv", "basic_val.tsv"]
    lines = (d / "basic_train.tsv").read_text().splitlines()
    assert lines[0] == "Source\tTarget" and len(lines) == 1 + LISTOPS_SMALL["train_size"]
    for line in lines[1:]:
        src, label = line.split("\t")
        assert src.startswith("( ") and src.endswith(" ] )")  # LRA's wrappers around the root node
        assert int(label) == reference_value(src)
        assert LISTOPS_SMALL["min_len"] < lra_length(src) < LISTOPS_SMALL["max_len"]
    sources = [ln.split("\t")[0] for f in d.glob("*.tsv") for ln in f.read_text().splitlines()[1:]]
    assert len(set(sources)) == len(sources)  # no expression in two splits


def test_lra_string_matches_lras_left_nested_wrapping():
    assert lo.lra_string(("[MAX", [2, 9])) == "( ( ( [MAX 2 ) 9 ) ] )"
    nested = ("[SM", [("[MIN", [3, 4]), 5])
    assert lo.lra_string(nested) == "( ( ( [SM ( ( ( [MIN 3 ) 4 ) ] ) ) 5 ) ] )"
    assert lo.evaluate(nested) == 8 and reference_value(lo.lra_string(nested)) == 8


def test_generator_labels_agree_with_an_independent_evaluator():
    rows = generate(300, seed=11, min_len=3, max_len=400, max_depth=8, max_args=10)
    for src, label in rows:
        assert label == reference_value(src)
        assert 3 < lra_length(src) < 400
    assert len({label for _, label in rows}) == 10
    ops = {t for src, _ in rows for t in src.split() if t.startswith("[")}
    assert ops == {"[MIN", "[MAX", "[MED", "[SM"}


def test_generator_respects_depth_and_is_seeded():
    def depth(src):
        d = best = 0
        for t in src.split():
            d += t.startswith("[")
            d -= t == "]"
            best = max(best, d)
        return best

    rows = generate(200, seed=5, min_len=3, max_len=10_000, max_depth=4, max_args=3)
    assert max(depth(s) for s, _ in rows) == 3  # operators at depths 1..3; depth 4 is always a digit
    assert all(s.count("(") == s.count(")") for s, _ in rows)
    assert rows == generate(200, seed=5, min_len=3, max_len=10_000, max_depth=4, max_args=3)
    assert rows != generate(200, seed=6, min_len=3, max_len=10_000, max_depth=4, max_args=3)


def test_median_takes_the_integer_part():
    assert lo.evaluate(("[MED", [1, 2])) == 1 and lo.evaluate(("[MED", [3, 4, 9, 8])) == 6
    assert lo.evaluate(("[SM", [9, 8, 7])) == 4


def test_batches_have_documented_shapes_padding_and_labels(listops_root):
    task = _task(listops_root, batch_size=4, bucket=False)
    task.setup("fit")
    src_lines = (listops_root / "listops" / "basic_val.tsv").read_text().splitlines()[1:]
    want = {tuple(tokenize(s)): int(lab) for s, lab in (ln.split("\t") for ln in src_lines)}
    seen = 0
    for batch in task.val_dataloader():
        x, mask, y = batch["x"], batch["mask"], batch["y"]
        assert x.dtype == torch.long and mask.dtype == torch.bool and y.dtype == torch.long
        assert y.shape == (x.shape[0], 1) and x.shape == mask.shape
        assert int(mask.sum(1).max()) == x.shape[1]  # padded only to this batch's longest
        for row, m, label in zip(x, mask, y):
            ids = row[m].tolist()
            assert (row[~m] == 0).all() and m[: len(ids)].all()  # right padding with pad id 0
            assert want[tuple(ids)] == int(label)
            seen += 1
    assert seen == LISTOPS_SMALL["val_size"]
    assert task.spec.vocab_size == 17 and task.spec.pad_id == 0 and task.spec.num_classes == 10
    assert task.spec.seq_len == 2000 and task.spec.truncatable and task.spec.readout == "last"


# Run in a fresh interpreter with another hash seed. Lightning is stubbed there: only the vocabulary
# matters, and importing Lightning costs seconds.
FRESH = """
import json, sys, types
pl = types.ModuleType("lightning.pytorch"); pl.LightningDataModule = object
sys.modules.update({"lightning": types.SimpleNamespace(pytorch=pl), "lightning.pytorch": pl})
import fpt.tasks.listops as t
print(json.dumps([hash("[MIN"), t.TOKENS, t.tokenize("( ( [SM 1 ) ( ( [MED 7 ) 3 ) ] ) ] )")]))
"""


@pytest.mark.slow
def test_vocabulary_keeps_closers_and_is_fixed_across_processes(tmp_path):
    assert len(TOKENS) == 17 and TOKENS[:2] == ("<pad>", "<unk>") and "]" in TOKENS
    assert tokenize("( ( ( [MAX 2 ) 9 ) ] )") == [TOKENS.index(t) for t in ("[MAX", "2", "9", "]")]
    seed = "12345" if os.environ.get("PYTHONHASHSEED") != "12345" else "54321"
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(Path(lo.__file__).parents[1])}
    res = subprocess.run([sys.executable, "-c", FRESH], env=env, capture_output=True, text=True, check=True, cwd=tmp_path)
    other_hash, tokens, ids = json.loads(res.stdout)
    assert other_hash != hash("[MIN")  # the other process really hashes strings differently
    assert tokens == list(TOKENS) and ids == tokenize("( ( [SM 1 ) ( ( [MED 7 ) 3 ) ] ) ] )")


def test_paper_compat_drops_every_bracket_and_caps_at_512(listops_root):
    task = _task(listops_root, paper_compat=True)
    assert task.spec.seq_len == 512
    task.setup("test")
    ds = task.dataset("test")
    fixed = _task(listops_root)
    fixed.setup("test")
    close = TOKENS.index("]")
    assert not (ds.data.tokens == close).any() and (fixed.dataset("test").data.tokens == close).any()
    # the same tokens minus the closers
    assert ds[0][0].tolist() == [t for t in fixed.dataset("test")[0][0].tolist() if t != close]


def test_fit_to_keeps_the_first_tokens(listops_root):
    task = _task(listops_root, batch_size=8)
    task.setup("fit")
    full = task.dataset("val")[0][0].copy()
    task.fit_to(16)
    assert task.spec.seq_len == 16
    assert task.dataset("val")[0][0].tolist() == full[:16].tolist()
    assert next(iter(task.val_dataloader()))["x"].shape[1] == 16


def test_bucketed_train_batches_cover_every_example_once(listops_root):
    task = _task(listops_root, batch_size=5)
    task.setup("fit")
    loader = task.train_dataloader()
    batches = loader.batch_sampler
    epoch0 = list(batches)
    assert sorted(i for b in epoch0 for i in b) == list(range(LISTOPS_SMALL["train_size"]))
    batches.set_epoch(1)
    assert list(batches) != epoch0
    batches.set_epoch(0)
    assert list(batches) == epoch0  # a function of (seed, epoch): the same again
    sizes = [b["y"].shape[0] for b in loader]
    assert sizes == [5, 5, 5, 5, 4]  # full batches first, the short one last


def test_data_train_size_takes_a_seeded_nested_subset(listops_root):
    def train_rows(n):
        task = _task(listops_root, data={"train_size": n})
        task.setup("fit")
        ds = task.dataset("train")
        return [tuple(ds[i][0].tolist()) for i in range(len(ds))]

    five, ten, again = train_rows(5), train_rows(10), train_rows(5)
    assert len(five) == 5 and len(ten) == 10 and five == again
    assert set(five) < set(ten)  # a smaller set is part of a larger one
    assert len(train_rows(None)) == LISTOPS_SMALL["train_size"]


def test_cache_is_reused_and_invalidated_when_the_file_changes(tmp_path, monkeypatch):
    ListOps.write_data(tmp_path, **LISTOPS_SMALL)
    path = tmp_path / "listops" / "basic_val.tsv"
    calls = []
    real = lo.tokenize_file
    monkeypatch.setattr(lo, "tokenize_file", lambda *a: calls.append(a) or real(*a))
    first = lo.load_split(path, False)
    assert len(calls) == 1 and len(list((path.parent / ".cache").glob("basic_val.tsv.lra.*.npz"))) == 1
    again = lo.load_split(path, False)
    assert len(calls) == 1 and np.array_equal(first.tokens, again.tokens)
    lo.load_split(path, True)  # other settings: their own cache
    assert len(calls) == 2
    with open(path, "a") as f:
        f.write("( ( ( [MAX 2 ) 9 ) ] )\t9\n")
    changed = lo.load_split(path, False)
    assert len(calls) == 3 and len(changed.labels) == len(first.labels) + 1
    assert len(list((path.parent / ".cache").glob("basic_val.tsv.lra.*.npz"))) == 1  # the stale one is gone


def test_files_directly_in_data_root_are_accepted(tmp_path):
    ListOps.write_data(tmp_path, **LISTOPS_SMALL)
    flat = tmp_path / "flat"
    (tmp_path / "listops").rename(flat)
    assert _task(flat).data_dir() == flat


def test_missing_files_error_is_one_line_and_names_them(tmp_path):
    (tmp_path / "listops").mkdir()
    (tmp_path / "listops" / "basic_train.tsv").write_text("Source\tTarget\n")
    with pytest.raises(FPTError) as e:
        _task(tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "basic_val.tsv" in msg and "basic_test.tsv" in msg and "basic_train.tsv" not in msg
    assert str(tmp_path / "listops") in msg and "lra_release.gz" in msg and "fpt data listops" in msg


def test_bad_header_and_bad_label_fail_in_one_line(tmp_path):
    ListOps.write_data(tmp_path, **LISTOPS_SMALL)
    d = tmp_path / "listops"
    lines = (d / "basic_test.tsv").read_text().splitlines()
    (d / "basic_test.tsv").write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(FPTError, match="header") as e:
        _task(tmp_path)
    assert "\n" not in str(e.value)
    (d / "basic_test.tsv").write_text("\n".join([lines[0], lines[1].split("\t")[0] + "\t12"]) + "\n")
    with pytest.raises(FPTError, match=r"basic_test.tsv:2: label '12'"):
        lo.tokenize_file(d / "basic_test.tsv", False)


@pytest.mark.parametrize("kw, word", [({"max_len": 0}, "max_len"), ({"readout": "last_k"}, "readout"),
                                      ({"paper_compat": "yes"}, "paper_compat"), ({"val_size": -1}, "val_size")])
def test_bad_options_fail_in_one_line(kw, word):
    """By the task's schema: the one check when the config is composed and the class is built (task_options)."""
    from fpt.config.schema import check

    with pytest.raises(FPTError, match=f"task.{word}") as e:
        check(ListOps.Options, kw, "task")
    assert "\n" not in str(e.value)


def test_write_data_rejects_bad_options():
    from fpt.config.sections import check_data_options

    with pytest.raises(FPTError, match="listops: unknown option 'size'"):
        check_data_options(ListOps, {"size": 3}, "listops")
    with pytest.raises(FPTError, match="min_len"):
        check_data_options(ListOps, {"min_len": 10, "max_len": 11}, "listops")


@pytest.mark.slow
def test_train_end_to_end_writes_test_accuracy(tiny, listops_root, tmp_path):
    from fpt.run.train import build, train

    cfg = tiny_cfg(tiny, "bert", "task=listops", f"data.root={listops_root}", "trainer.max_steps=4",
                   "trainer.val_check_interval=2", "task.batch_size=4", "trainer.log_every_n_steps=1")
    task, lit = build(cfg)  # the tiny BERT has 64 positions: model and task are cut to them
    assert task.spec.seq_len == lit.model.spec.seq_len == 64 and lit.model.spec.vocab_size == 17
    res = train(cfg, tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["test/acc"] == res["test/acc"] and saved["task"] == "listops" and saved["steps"] == 4
    n_test = LISTOPS_SMALL["test_size"]
    assert 0 <= res["test/acc"] <= 1 and abs(res["test/acc"] * n_test - round(res["test/acc"] * n_test)) < 1e-6  # whole test file


def test_generated_listops_writes_its_files_once(tmp_path):
    from fpt.tasks.listops import GeneratedListOps

    gen = dict(train_size=30, val_size=5, test_size=5, min_len=6, max_len=30, max_depth=3, max_args=4, seed=1)
    t = GeneratedListOps(generate=gen, data={"root": str(tmp_path)})
    t.check()
    d = t.data_dir()
    assert d is not None and d.parent.name.startswith("listops_generated-")
    rows = (d / "basic_train.tsv").read_text().splitlines()
    assert rows[0] == "Source\tTarget" and len(rows) == 31
    stamp = (d / "basic_train.tsv").stat().st_mtime_ns
    GeneratedListOps(generate=gen, data={"root": str(tmp_path)}).check()
    assert (d / "basic_train.tsv").stat().st_mtime_ns == stamp  # reused, not rewritten
    other = GeneratedListOps(generate={**gen, "seed": 2}, data={"root": str(tmp_path)})
    assert other.gen_root != t.gen_root  # other generator options, other files
