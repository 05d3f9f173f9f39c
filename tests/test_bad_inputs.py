"""Every kind of bad input is one line on stderr, exit code 2, no traceback, and fast.

Each case calls the `fpt` command in-process (`fpt.cli.main`, output captured); a few run the real command
in a subprocess, as a user types it. Config errors (checked before the heavy imports) must answer within
10 s; cases that import a task module or build the task or the trunk get 25 s on a loaded CI machine.
"""

import os
import time

import pytest
import torch

from tests.helpers import run_fpt, run_fpt_process

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
    (tmp / "sweep").mkdir(exist_ok=True)
    ts = tmp / "ts" / "Toy"
    ts.mkdir(parents=True, exist_ok=True)
    for split in ("TRAIN", "TEST"):
        (ts / f"Toy_{split}.ts").write_text("@classLabel true a b\n@data\n1,2,3:a\n1,oops,3:b\n")
    (tmp / "fc").mkdir(exist_ok=True)
    (tmp / "fc" / "nodate.csv").write_text("a,b\n" + "\n".join(f"{i},{i}" for i in range(50)) + "\n")
    import numpy as np

    np.savez(tmp / "labels.npz", x=np.zeros((4, 3, 2), np.float32), y=np.array([0, 1, -1, 2]))
    _present(tmp / "present")
    return {"gpt2": str(tiny["gpt2"]), "tmp": str(tmp), **_image_models(tmp)}


def _present(root):
    """Every file the cifar10, mnist and listops yamls declare (`files:`), empty: their option checks come after that."""
    from fpt.config import compose

    for task in ("cifar10", "mnist", "listops"):
        files = compose([f"task={task}", f"data.root={root}"]).task.files
        (root / files["in"][0]).mkdir(parents=True, exist_ok=True)
        for name in files.need:
            (root / files["in"][0] / name).touch()


def _image_models(tmp) -> dict[str, str]:
    """Tiny image models FPT refuses as trunks: a hierarchical transformer (Swin) and a convolutional net (ConvNeXt)."""
    import transformers

    small = dict(image_size=32, patch_size=4, num_channels=1)
    transformers.SwinModel(transformers.SwinConfig(**small, embed_dim=8, depths=[1, 1], num_heads=[1, 2], window_size=4)).save_pretrained(tmp / "swin")
    transformers.ConvNextModel(transformers.ConvNextConfig(num_channels=1, num_stages=2, hidden_sizes=[8, 16], depths=[1, 1])).save_pretrained(tmp / "convnext")
    return {"swin": str(tmp / "swin"), "convnext": str(tmp / "convnext")}


CASES = [
    # (id, args, needles, budget)
    # --- names: groups, keys, freeze groups
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
    ("key added at the root", ["train", "+sed=1"], ["unknown option 'sed'", "seed"], QUICK),
    ("key added to a section", ["train", "+optim.lrr=1"], ["unknown option 'optim.lrr'", "optim takes: lr"], QUICK),
    # --- types and ranges of the root sections (fpt.sections)
    ("lr negative", ["train", "optim.lr=-1"], ["optim.lr must be a positive number, got -1"], QUICK),
    ("lr zero", ["train", "optim.lr=0"], ["optim.lr must be a positive number"], QUICK),
    ("lr wrong type", ["train", "optim.lr=fast"], ["optim.lr", "'fast'"], QUICK),
    ("weight decay negative", ["train", "optim.weight_decay=-0.1"], ["optim.weight_decay"], QUICK),
    ("betas not a pair", ["train", "optim.betas=[0.9]"], ["optim.betas must be two numbers in [0, 1)"], QUICK),
    ("max steps negative", ["train", "trainer.max_steps=-5"], ["trainer.max_steps"], QUICK),
    ("max steps zero", ["train", "trainer.max_steps=0"], ["trainer.max_steps must be a positive number of steps"], QUICK),
    ("max epochs zero", ["train", "trainer.max_epochs=0"], ["trainer.max_epochs"], QUICK),
    ("val interval zero", ["train", "trainer.val_check_interval=0"], ["trainer.val_check_interval"], QUICK),
    ("log interval zero", ["train", "trainer.log_every_n_steps=0"], ["trainer.log_every_n_steps must be a positive integer"], QUICK),
    ("progress bar not a flag", ["train", "trainer.enable_progress_bar=yes"], ["trainer.enable_progress_bar must be true or false"], QUICK),
    ("precision unknown", ["train", "trainer.precision=fp7"], ["trainer.precision", "bf16-mixed", "'fp7'"], QUICK),
    ("seed wrong type", ["train", "seed=abc"], ["seed must be an integer"], QUICK),
    ("seed negative", ["train", "seed=-1"], ["seed must be an integer in 0..8388607"], QUICK),
    ("train size zero", ["train", "data.train_size=0"], ["data.train_size must be a positive integer or null"], QUICK),
    ("max len zero", ["train", "data.max_len=0"], ["data.max_len"], QUICK),
    ("workers negative", ["train", "data.num_workers=-1"], ["data.num_workers must be an integer >= 0"], QUICK),
    ("feature cache unknown", ["train", "features.cache=maybe"], ["features.cache must be auto, true or false"], QUICK),
    ("stop threshold out of range", ["train", "stop_at_val_acc=2"], ["stop_at_val_acc"], QUICK),
    ("target out of range", ["train", "targets=0.5,2"], ["targets must be a list of accuracies in (0, 1]"], QUICK),
    ("nan policy unknown", ["train", "on_nan=explode"], ["on_nan must be stop or skip"], QUICK),
    ("train acc not a flag", ["train", "eval.train_acc=maybe"], ["eval.train_acc"], QUICK),
    ("train examples zero", ["train", "eval.train_examples=0"], ["eval.train_examples"], QUICK),
    ("logger kind unknown", ["train", "logger.kind=mlflow"], ["logger.kind must be csv, tensorboard or wandb"], QUICK),
    ("resume missing", ["train", "resume=/no/such/run"], ["resume", "/no/such/run"], QUICK),
    # --- model, per kind
    ("readout unknown", ["train", "model.readout=first"], ["model.readout must be last_k, last, mean, flatten or null"], QUICK),
    ("depth zero", ["train", "model.depth=0"], ["model.depth"], QUICK),
    ("input dropout out of range", ["train", "model.input_dropout=1.5"], ["model.input_dropout must be in [0, 1)"], QUICK),
    ("input gain zero", ["train", "model.input_gain=0"], ["model.input_gain must be a positive number"], QUICK),
    ("lstm cell unknown", ["train", "model=lstm", "model.cell=gru"], ["model.cell must be ln or plain, got 'gru'"], QUICK),
    ("lstm layers zero", ["train", "model=lstm", "model.layers=0"], ["model.layers must be a positive integer, got 0"], QUICK),
    ("linformer heads do not divide", ["train", "model=linformer", "model.heads=5"], ["model.heads", "dividing model.hidden=768"], QUICK),
    # --- trunk
    ("trunk dtype unknown", ["train", "trunk.dtype=fp8"], ["trunk.dtype must be auto, bf16 or fp32"], QUICK),
    ("init unknown", ["train", "trunk.init=pretrianed"], ["trunk.init", "stats"], QUICK),
    ("init from missing run", ["train", "trunk.init=/no/such/run"], ["trunk.init", "/no/such/run"], QUICK),
    ("dropout out of range", ["train", "trunk.dropout=1.5"], ["trunk.dropout"], QUICK),
    ("trunk path without model", ["train", "trunk=gpt2", "trunk.path={tmp}/empty"], ["no config.json"], QUICK),
    ("hub id offline", ["train", "trunk=bert"], ["could not load trunk 'bert-base-uncased'", "trunk.path=DIR"], QUICK),
    # --- the command line: flags, bare words, where it writes, Hydra's keys
    ("unknown command", ["trian"], ["unknown command 'trian'", "train"], QUICK),
    ("unknown flag", ["train", "--cfgg"], ["unknown flag '--cfgg'"], QUICK),
    ("cfg part unknown", ["train", "--cfg", "everything"], ["--cfg takes job, hydra, all"], QUICK),
    ("bare word", ["train", "bit_xor"], ["expected key=value, got 'bit_xor'"], QUICK),
    ("syntax error", ["train", "freeze=[attn"], ["freeze=[attn"], QUICK),
    ("run dir component too long", ["train", "hydra.run.dir={tmp}/" + "x" * 300], ["300 bytes long", "255"], QUICK),
    ("run dir is a file", ["train", "hydra.run.dir=/etc/passwd"], ["/etc/passwd is a file, not a directory"], QUICK),
    ("out is a file", ["train", "out=/etc/passwd"], ["out=/etc/passwd: /etc/passwd is a file"], QUICK),
    ("out and run dir disagree", ["train", "out={tmp}/a", "hydra.run.dir={tmp}/b"], ["disagree", "out="], QUICK),
    ("sweep dir for one run", ["train", "hydra.sweep.dir={tmp}/s"], ["hydra.sweep.dir applies to sweeps only", "out=DIR"], QUICK),
    ("launcher for one run", ["train", "hydra/launcher=basic"], ["hydra/launcher applies to sweeps only"], QUICK),
    ("run dir under multirun", ["train", "--multirun", "seed=0,1", "hydra.run.dir={tmp}/r"], ["hydra.run.dir is not used under --multirun"], QUICK),
    ("run dir for a sweep", ["sweep", "seed=0,1", "hydra.run.dir={tmp}/r"], ["hydra.run.dir is not used by a sweep", "out=DIR"], QUICK),
    ("sweep protocol unknown", ["sweep", "seed=0,1", "sweep.lr_protocol=best", "out={tmp}/sweep"], ["sweep.lr_protocol must be all or seed0"], QUICK),
    ("analyze with a Hydra job key", ["analyze", "probe", "run={tmp}", "hydra.job.chdir=true"], ["runs no Hydra job", "hydra.job.chdir", "out=DIR"], QUICK),
    ("analyze option unknown", ["analyze", "attention", "run={tmp}", "layer=[0]"], ["unknown option 'layer'", "layers"], QUICK),
    ("analyze count zero", ["analyze", "probe", "run={tmp}", "n=0"], ["n must be a positive integer, got 0"], QUICK),
    ("analyze pool unknown", ["analyze", "similarity", "a={tmp}", "b=trunk", "pool=max"], ["pool must be mean or flat, got 'max'"], QUICK),
    ("analyze heads not integers", ["analyze", "attention", "run={tmp}", "heads=[x]"], ["heads must be an index", "['x']"], QUICK),
    ("analyze a sweep", ["analyze", "probe", "run={tmp}", "n=1,2"], ["n=1,2 is a sweep"], QUICK),
    ("analyze run missing", ["analyze", "attention", "run={tmp}/nope"], ["no run directory"], QUICK),
    ("analyze tool unknown", ["analyze", "nope"], ["unknown analysis 'nope'"], QUICK),
    ("eval out", ["eval", "ckpt={tmp}/trunc.ckpt", "out={tmp}/e"], ["beside the checkpoint", "out= does not apply"], QUICK),
    ("eval without ckpt", ["eval"], ["missing ckpt=PATH"], QUICK),
    ("eval missing file", ["eval", "ckpt={tmp}/none.ckpt"], ["no checkpoint at"], QUICK),
    ("eval ablate layers not integers", ["eval", "ckpt={tmp}/trunc.ckpt", "ablate.layers=[x]"], ["ablate.layers must be an index"], QUICK),
    ("inspect out", ["inspect", "out={tmp}/i"], ["writes no file", "out= does not apply"], QUICK),
    ("bench run dir", ["bench", "hydra.run.dir={tmp}/b"], ["runs no Hydra job", "out=FILE"], QUICK),
    ("report missing dir", ["report", "{tmp}/nosweep"], ["no sweep directory"], QUICK),
    ("report option unknown", ["report", "{tmp}/sweep", "format=pdf"], ["unknown option 'format'"], QUICK),
    ("data out is a file", ["data", "mnist", "out=/etc/passwd"], ["/etc/passwd is a file, not a directory"], QUICK),
    ("data without out", ["data", "mnist"], ["missing out=DIR"], QUICK),
    ("data for unknown task", ["data", "nope", "out={tmp}/x"], ["unknown task 'nope'"], QUICK),
    # --- task options: each task's schema (importing the task module: Lightning)
    ("batch size zero", ["train", "task.batch_size=0"], ["task.batch_size must be a positive integer"], LOADED),
    ("batch size wrong type", ["train", "task.batch_size=many"], ["task.batch_size", "'many'"], LOADED),
    ("task option added", ["train", "+task.bits=3"], ["unknown option 'task.bits'", "n_bits"], LOADED),
    ("patch does not divide", ["train", "task=bit_memory", "task.patch=7"], ["task.patch=7 must divide task.n_bits=1000"], LOADED),
    ("mask prob out of range", ["train", "task=bit_memory", "task.mask_prob=1.5"], ["task.mask_prob"], LOADED),
    ("xor with no bits", ["train", "task.n_bits=0"], ["task.n_bits must be a positive integer, got 0"], LOADED),
    ("image patch does not divide", ["train", "task=mnist", "data.root={tmp}/present", "task.patch=5"], ["task.patch must be a divisor of the 28-pixel"], LOADED),
    ("image readout", ["train", "task=cifar10", "data.root={tmp}/present", "task.readout=last_k"], ["task.readout must be last or mean"], LOADED),
    ("image val size", ["train", "task=mnist", "data.root={tmp}/present", "task.val_size=1.5"], ["task.val_size must be a count or a fraction"], LOADED),
    ("image flag", ["train", "task=cifar10", "data.root={tmp}/present", "task.augment=yes"], ["task.augment must be true or false"], LOADED),
    ("lra variant augmented", ["train", "task=cifar10_lra", "data.root={tmp}/present", "task.variant=lra", "task.augment=true"], ["no augmentation"], LOADED),
    ("listops readout", ["train", "task=listops", "data.root={tmp}/present", "task.readout=last_k"], ["task.readout must be last or mean"], LOADED),
    ("listops generator", ["train", "task=listops_small", "task.generate.max_args=1"], ["task.generate.max_args must be an integer >= 2"], LOADED),
    ("homology format", ["train", "task=remote_homology", "task.format=csv"], ["task.format must be auto, json or lmdb"], LOADED),
    ("data option unknown", ["data", "mnist", "out={tmp}/x", "n_val=3"], ["mnist: unknown option 'n_val'", "n_train"], LOADED),
    ("data option out of range", ["data", "listops", "out={tmp}/x", "min_len=10", "max_len=11"], ["max_len >= min_len + 2"], LOADED),
    ("data for a generated task", ["data", "bit_xor", "out={tmp}/x"], ["generated on the fly"], LOADED),
    # --- what only building the task, the trunk or the trainer can tell
    ("listops files missing", ["train", "task=listops", "data.root={tmp}/empty"], ["listops data missing", "basic_train.tsv", "fpt data listops"], QUICK),
    ("listops tsv without header", ["train", "task=listops", "data.root={tmp}/lo"], ["Source", "header"], LOADED),
    ("listops bad label", ["train", "task=listops", "data.root={tmp}/lab", "trunk=gpt2", "trunk.path={gpt2}"], ["seven"], LOADED),
    ("sequence longer than the trunk", ["train", "task=bit_memory", "trunk=gpt2", "trunk.path={gpt2}"], ["120 tokens but trunk", "64 positions"], LOADED),
    ("unfreeze beyond the blocks", ["train", "trunk=gpt2", "trunk.path={gpt2}", "unfreeze.groups=ffn", "unfreeze.last=9"], ["unfreeze.last=9", "choose 1..2"], LOADED),
    ("depth beyond the blocks", ["train", "trunk=gpt2", "trunk.path={gpt2}", "model.depth=5"], ["model.depth=5", "choose 1..2"], LOADED),
    ("linformer shorter than the task", ["train", "model=linformer", "model.max_len=5"], ["model=linformer: the task has 10 tokens but model.max_len=5"], LOADED),
    ("freeze group absent from the model", ["train", "model=lstm", "freeze=attn"], ["'attn' matches no parameter"], LOADED),
    ("accelerator absent", ["train", "trunk=gpt2", "trunk.path={gpt2}", "trainer.accelerator=gpu"], ["trainer options rejected"], LOADED),
    ("hierarchical image trunk", ["inspect", "trunk=auto", "trunk.path={swin}"],
     ["SwinModel (model_type swin) merges patches between stages", "token count changes", "deit, beit, dinov2"], LOADED),
    ("convolutional image trunk", ["train", "trunk=auto", "trunk.path={convnext}"],
     ["ConvNextModel (model_type convnext) is a convolutional network", "use a ViT-style image encoder"], LOADED),
    ("eval truncated checkpoint", ["eval", "ckpt={tmp}/trunc.ckpt"], ["cannot read checkpoint", "truncated or not a PyTorch checkpoint"], LOADED),
    ("eval foreign checkpoint", ["eval", "ckpt={tmp}/alien.ckpt"], ["not an fpt checkpoint"], LOADED),
    # --- time series and your own data (issue 17)
    ("uea malformed line", ["train", "task=uea", "data.root={tmp}/ts", "data.name=Toy"], ["Toy_TRAIN.ts:4: 'oops' is not a number"], LOADED),
    ("uea name unknown", ["train", "task=uea", "data.root={tmp}/ts", "data.name=Nope"], ["uea data missing: Nope_TRAIN.ts"], QUICK),
    ("forecast csv without date", ["train", "task=forecast", "data.root={tmp}/fc", "data.name=nodate"],
     ["nodate.csv: no date column"], LOADED),
    ("custom label range", ["train", "task=custom", "data.path={tmp}/labels.npz"], ["labels.npz: class labels must be integers 0..C-1"], LOADED),
]
# The real command in a subprocess, as a user types it: a config error, a failure inside Hydra's job, a checkpoint
# error, and a hub id with no network (HF_HUB_OFFLINE must be set before transformers is imported).
SUBPROCESS = {"freeze typo", "listops files missing", "eval truncated checkpoint"}
SLOW_SUBPROCESS = {"eval truncated checkpoint"}  # ~10 s: torch.load
assert SUBPROCESS <= {c[0] for c in CASES}
NO_NETWORK = ("hub id with no network", ["train", "trunk=gpt2"], ["could not load trunk 'gpt2'", "trunk.path=DIR", "no network"], QUICK)


@pytest.fixture(scope="module")
def files(tiny, tmp_path_factory):
    return _files(tiny, tmp_path_factory.mktemp("bad"))


def _args(case_args, files, tmp_path):
    args = [a.format(**files) for a in case_args]
    if args[0] == "train" and not any(a.startswith(("hydra.", "out=", "--")) for a in args):
        args.append(f"hydra.run.dir={tmp_path / 'run'}")
    return args


def check(code, err, needles, elapsed, budget, tmp_path):
    assert code == 2, (code, err[-2000:])
    assert "Traceback" not in err, err[-3000:]
    lines = [ln for ln in err.strip().splitlines() if ln.strip() and not ln.startswith("note:")]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    # the budget holds on a quiet machine; on a loaded one (load average above the core count) it stretches in proportion
    assert elapsed < budget * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1)), (elapsed, os.getloadavg())
    assert (tmp_path / "keep.txt").read_text() == "finished work"
    res = tmp_path / "run" / "results.json"
    assert not res.exists() or '"status": "failed"' in res.read_text()  # a failure is recorded, never a result


@pytest.mark.parametrize("name, args, needles, budget", CASES, ids=[c[0] for c in CASES])
def test_bad_input(files, tmp_path, capsys, monkeypatch, name, args, needles, budget):
    args = _args(args, files, tmp_path)
    monkeypatch.chdir(tmp_path)  # a command that wrote to its default place would write here
    (tmp_path / "keep.txt").write_text("finished work")
    t0 = time.perf_counter()
    code, _, err = run_fpt(capsys, *args)
    check(code, err, needles, time.perf_counter() - t0, budget, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) in (["keep.txt"], ["keep.txt", "run"])  # nothing written elsewhere


@pytest.mark.parametrize("name, args, needles, budget", [
    pytest.param(*c, id=c[0], marks=[pytest.mark.slow] if c[0] in SLOW_SUBPROCESS else [])
    for c in [c for c in CASES if c[0] in SUBPROCESS] + [NO_NETWORK]])
def test_bad_input_in_a_real_process(files, tmp_path, name, args, needles, budget):
    args = _args(args, files, tmp_path)
    (tmp_path / "keep.txt").write_text("finished work")
    t0 = time.perf_counter()
    p, _ = run_fpt_process(*args, env={"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "https://hub.invalid"})
    check(p.returncode, p.stderr, needles, time.perf_counter() - t0, budget, tmp_path)
