"""Every kind of bad input is one line on stderr, a non-zero exit, no traceback, and fast.

Each case runs the real `fpt` command in a subprocess. Cases that fail before the heavy imports
(config checks) must answer within 10 s; cases that must first build the task or the trunk get 25 s
on a loaded CI machine (about 8 s on an idle 2-core one).
"""

import time

import pytest
import torch

from tests.test_cli import run

QUICK, LOADED = 10, 25


def _files(tiny, tmp):
    """Paths the cases need: tiny trunk, bad data files, bad checkpoints."""
    (tmp / "empty").mkdir(exist_ok=True)
    lo = tmp / "lo" / "listops"
    lo.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "test"):
        (lo / f"basic_{split}.tsv").write_text("[MAX 2 3 ]\t3\n")  # no Source/Target header
    lab = tmp / "lab" / "listops"
    lab.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "test"):
        (lab / f"basic_{split}.tsv").write_text("Source\tTarget\n[MAX 2 3 ]\tseven\n")
    (tmp / "trunc.ckpt").write_bytes(b"PK\x03\x04\x14\x00 truncated")
    torch.save({"state_dict": {}}, tmp / "alien.ckpt")
    return {"gpt2": str(tiny["gpt2"]), "tmp": str(tmp)}


CASES = [
    # (id, args, needles, budget)
    ("freeze typo", ["train", "freeze=atn"], ["unknown freeze group 'atn'", "attn, ffn"], QUICK),
    ("freeze one bad of two", ["train", "freeze=attn,bogus"], ["'bogus'"], QUICK),
    ("unfreeze typo", ["train", "unfreeze.groups=fnn"], ["'fnn'"], QUICK),
    ("task unknown", ["train", "task=nope"], ["unknown task 'nope'", "bit_xor"], QUICK),
    ("trunk unknown", ["train", "trunk=nope"], ["unknown trunk 'nope'", "minilm"], QUICK),
    ("model unknown", ["train", "model=nope"], ["unknown model 'nope'", "lstm"], QUICK),
    ("trainer unknown", ["train", "trainer=nope"], ["unknown trainer 'nope'", "default"], QUICK),
    ("logger unknown", ["train", "logger=nope"], ["unknown logger 'nope'", "wandb"], QUICK),
    ("experiment unknown", ["train", "experiment=nope"], ["unknown experiment 'nope'", "cpu_main"], QUICK),
    ("variant unknown", ["train", "variant=nope"], ["unknown variant 'nope'", "frozen_random"], QUICK),
    ("key typo", ["train", "optim.lrr=0.1"], ["optim.lrr"], QUICK),
    ("key typo top level", ["train", "sed=1"], ["sed"], QUICK),
    ("lr negative", ["train", "optim.lr=-1"], ["optim.lr must be a positive number"], QUICK),
    ("lr zero", ["train", "optim.lr=0"], ["optim.lr must be a positive number"], QUICK),
    ("lr wrong type", ["train", "optim.lr=fast"], ["optim.lr", "'fast'"], QUICK),
    ("weight decay negative", ["train", "optim.weight_decay=-0.1"], ["optim.weight_decay"], QUICK),
    ("batch size zero", ["train", "task.batch_size=0"], ["task.batch_size must be a positive integer"], QUICK),
    ("batch size wrong type", ["train", "task.batch_size=many"], ["task.batch_size", "'many'"], QUICK),
    ("max steps negative", ["train", "trainer.max_steps=-5"], ["trainer.max_steps"], QUICK),
    ("val interval zero", ["train", "trainer.val_check_interval=0"], ["trainer.val_check_interval"], QUICK),
    ("seed wrong type", ["train", "seed=abc"], ["seed must be an integer"], QUICK),
    ("seed negative", ["train", "seed=-1"], ["seed must be an integer in 0..8388607"], QUICK),
    ("max steps zero", ["train", "trainer.max_steps=0"], ["trainer.max_steps must be a positive number of steps"], QUICK),
    ("run dir component too long", ["train", "hydra.run.dir={tmp}/" + "x" * 300], ["300 bytes long", "255"], QUICK),
    ("run dir is a file", ["train", "hydra.run.dir=/etc/passwd"], ["/etc/passwd is a file, not a directory"], QUICK),
    ("data out is a file", ["data", "mnist", "out=/etc/passwd"], ["/etc/passwd is a file, not a directory"], QUICK),
    ("trunk dtype unknown", ["train", "trunk.dtype=fp8"], ["trunk.dtype must be auto, bf16 or fp32"], QUICK),
    ("train size zero", ["train", "data.train_size=0"], ["data.train_size"], QUICK),
    ("stop threshold out of range", ["train", "stop_at_val_acc=2"], ["stop_at_val_acc"], QUICK),
    ("nan policy unknown", ["train", "on_nan=explode"], ["on_nan must be stop or skip"], QUICK),
    ("readout unknown", ["train", "model.readout=first"], ["model.readout"], QUICK),
    ("depth zero", ["train", "model.depth=0"], ["model.depth"], QUICK),
    ("input dropout out of range", ["train", "model.input_dropout=1.5"], ["model.input_dropout must be in [0, 1)"], QUICK),
    ("input gain zero", ["train", "model.input_gain=0"], ["model.input_gain must be a positive number"], QUICK),
    ("max len zero", ["train", "data.max_len=0"], ["data.max_len"], QUICK),
    ("train acc not a flag", ["train", "eval.train_acc=maybe"], ["eval.train_acc"], QUICK),
    ("init unknown", ["train", "trunk.init=pretrianed"], ["trunk.init", "stats"], QUICK),
    ("init from missing run", ["train", "trunk.init=/no/such/run"], ["trunk.init", "/no/such/run"], QUICK),
    ("dropout out of range", ["train", "trunk.dropout=1.5"], ["trunk.dropout"], QUICK),
    ("trunk path without model", ["train", "trunk=gpt2", "trunk.path={tmp}/empty"], ["no config.json"], QUICK),
    ("resume missing", ["train", "resume=/no/such/run"], ["resume", "/no/such/run"], QUICK),
    ("hub id offline", ["train", "trunk=bert"], ["could not load trunk 'bert-base-uncased'", "trunk.path=DIR"], QUICK),
    ("unknown command", ["trian"], ["unknown command 'trian'", "train"], QUICK),
    ("data for unknown task", ["data", "nope", "out={tmp}/x"], ["unknown task 'nope'"], QUICK),
    ("eval without ckpt", ["eval"], ["missing ckpt=PATH"], QUICK),
    ("eval missing file", ["eval", "ckpt={tmp}/none.ckpt"], ["no checkpoint at"], QUICK),
    ("report missing dir", ["report", "{tmp}/nosweep"], ["no sweep directory"], QUICK),
    ("patch does not divide", ["train", "task=bit_memory", "task.patch=7"], ["task.patch=7 must divide task.n_bits=1000"], LOADED),
    ("mask prob out of range", ["train", "task=bit_memory", "task.mask_prob=1.5"], ["task.mask_prob"], LOADED),
    ("xor with no bits", ["train", "task.n_bits=0"], ["task.n_bits must be at least 1"], LOADED),
    ("listops files missing", ["train", "task=listops", "data.root={tmp}/empty"], ["ListOps files missing", "basic_train.tsv", "fpt data listops"], LOADED),
    ("listops tsv without header", ["train", "task=listops", "data.root={tmp}/lo"], ["Source", "header"], LOADED),
    ("listops bad label", ["train", "task=listops", "data.root={tmp}/lab", "trunk=gpt2", "trunk.path={gpt2}"], ["seven"], LOADED),
    ("sequence longer than the trunk", ["train", "task=bit_memory", "trunk=gpt2", "trunk.path={gpt2}"], ["120 tokens but trunk", "64 positions"], LOADED),
    ("unfreeze beyond the blocks", ["train", "trunk=gpt2", "trunk.path={gpt2}", "unfreeze.groups=ffn", "unfreeze.last=9"], ["unfreeze.last=9", "choose 1..2"], LOADED),
    ("depth beyond the blocks", ["train", "trunk=gpt2", "trunk.path={gpt2}", "model.depth=5"], ["model.depth=5", "choose 1..2"], LOADED),
    ("linformer shorter than the task", ["train", "model=linformer", "model.max_len=5"], ["model=linformer: the task has 10 tokens but model.max_len=5"], LOADED),
    ("freeze group absent from the model", ["train", "model=lstm", "freeze=attn"], ["'attn' matches no parameter"], LOADED),
    ("accelerator absent", ["train", "trunk=gpt2", "trunk.path={gpt2}", "trainer.accelerator=gpu"], ["trainer options rejected"], LOADED),
    ("precision unknown", ["train", "trunk=gpt2", "trunk.path={gpt2}", "trainer.precision=fp7"], ["trainer options rejected", "fp7"], LOADED),
    ("data for a generated task", ["data", "bit_xor", "out={tmp}/x"], ["generated on the fly"], LOADED),
    ("eval truncated checkpoint", ["eval", "ckpt={tmp}/trunc.ckpt"], ["cannot read checkpoint", "truncated or not a PyTorch checkpoint"], LOADED),
    ("eval foreign checkpoint", ["eval", "ckpt={tmp}/alien.ckpt"], ["not an fpt checkpoint"], LOADED),
]


@pytest.fixture(scope="module")
def files(tiny, tmp_path_factory):
    return _files(tiny, tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("name, args, needles, budget", CASES, ids=[c[0] for c in CASES])
def test_bad_input(files, tmp_path, name, args, needles, budget):
    args = [a.format(**files) for a in args]
    if args[0] == "train" and not any(a.startswith("hydra.run.dir=") for a in args):
        args.append(f"hydra.run.dir={tmp_path / 'run'}")
    keep = tmp_path / "keep.txt"
    keep.write_text("finished work")
    t0 = time.perf_counter()
    p, _ = run(*args, env={"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "https://hub.invalid"})
    elapsed = time.perf_counter() - t0
    err = p.stderr.strip()
    assert p.returncode != 0, p.stdout[-500:]
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("note:")]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert elapsed < budget, elapsed
    assert keep.read_text() == "finished work"
    res = tmp_path / "run" / "results.json"
    assert not res.exists() or '"status": "failed"' in res.read_text()  # a failure is recorded, never a result


def test_there_are_at_least_thirty_cases():
    assert len(CASES) >= 30
