"""Image tasks: fixtures in the real formats through the real loaders, patches, splits, errors, training."""

import json
import pickle
import shutil
import struct
import time

import numpy as np
import pytest
import torch
from einops import rearrange

from fpt.errors import FPTError
from fpt.tasks.image_base import LUMA, patchify
from fpt.tasks.image_splits import carve
from fpt.tasks.images import CIFAR_CLASSES, Cifar10, Cifar10Lra, Mnist
from fpt.tasks.pixel_logreg import GRID
from tests.helpers import compose_cfg

N_TRAIN, N_TEST, N_VAL = 120, 30, 20
MNIST_NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
CIFAR_NAMES = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """MNIST and CIFAR-10 fixtures written by `fpt data`, side by side as torchvision lays them out."""
    d = tmp_path_factory.mktemp("images")
    Mnist.write_data(d, n_train=N_TRAIN, n_test=N_TEST)
    Cifar10.write_data(d, n_train=N_TRAIN, n_test=N_TEST)
    return d


def _task(cls, root, **kw):
    task = cls(batch_size=8, val_size=N_VAL, data={"root": str(root)}, **kw)
    task.check()
    task.setup()
    return task


def _cifar_pickle(root, name):
    with open(root / "cifar-10-batches-py" / name, "rb") as f:
        return pickle.load(f, encoding="latin1")  # as torchvision reads it


def _unpatch(x, side, patch):
    """Tokens (T, p*p*c) back to the image (c, H, W): the inverse of the einops patch layout."""
    return rearrange(x, "(h w) (p1 p2 c) -> c (h p1) (w p2)", h=side // patch, p1=patch, p2=patch)


# --- formats and loaders ---------------------------------------------------------------------------
def test_mnist_fixture_is_four_idx_files_with_magic_numbers_and_big_endian_dims(root):
    raw = root / "MNIST" / "raw"
    assert struct.unpack(">4I", (raw / MNIST_NAMES[0]).read_bytes()[:16]) == (2051, N_TRAIN, 28, 28)
    assert struct.unpack(">2I", (raw / MNIST_NAMES[1]).read_bytes()[:8]) == (2049, N_TRAIN)
    assert struct.unpack(">4I", (raw / MNIST_NAMES[2]).read_bytes()[:16]) == (2051, N_TEST, 28, 28)
    assert (raw / MNIST_NAMES[3]).stat().st_size == 8 + N_TEST


def test_mnist_loads_49_tokens_of_16_with_the_written_pixels_and_labels(root):
    task = _task(Mnist, root)
    raw = root / "MNIST" / "raw"
    labels = np.frombuffer((raw / MNIST_NAMES[3]).read_bytes()[8:], np.uint8)
    pixels = np.frombuffer((raw / MNIST_NAMES[2]).read_bytes()[16:], np.uint8).reshape(-1, 28, 28)
    assert task.spec.seq_len == 49 and task.spec.token_dim == 16 and task.spec.num_classes == 10
    batch = next(iter(task.test_dataloader()))  # eval batch 64 >= 30: the whole test file
    assert batch["x"].shape == (N_TEST, 49, 16) and batch["x"].dtype == torch.float32
    assert batch["mask"].shape == (N_TEST, 49) and batch["mask"].all()
    assert batch["y"].shape == (N_TEST, 1) and batch["y"].dtype == torch.long
    assert batch["y"][:, 0].tolist() == labels.tolist()
    enc = task.sets["test"].encode
    img = _unpatch(batch["x"][3], 28, 4) * enc.std + enc.mean  # back on the [0, 1] scale
    assert torch.allclose(img[0] * 255, torch.from_numpy(pixels[3]).float(), atol=1e-3)
    assert len(set(labels.tolist())) == 10 and pixels.max() > 200 and pixels.min() == 0  # digits, not noise


def test_training_tokens_are_standardised_with_the_training_files_stats(root):
    task = _task(Mnist, root)
    x = torch.cat([torch.stack([s[i]["x"] for i in range(len(s))]) for s in (task.sets["train"], task.sets["val"])])
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-3
    raw = _task(Mnist, root, normalize=False).sets["test"][0]["x"]
    assert float(raw.min()) >= 0 and float(raw.max()) <= 1


def test_cifar10_loads_64_tokens_of_48_with_the_written_pixels_and_labels(root):
    task = _task(Cifar10, root)
    written = _cifar_pickle(root, "test_batch")
    assert task.spec.seq_len == 64 and task.spec.token_dim == 48
    batch = next(iter(task.test_dataloader()))
    assert batch["x"].shape == (N_TEST, 64, 48) and batch["y"][:, 0].tolist() == written["labels"]
    enc = task.sets["test"].encode
    img = _unpatch(batch["x"][7], 32, 4) * enc.std + enc.mean
    want = rearrange(torch.from_numpy(written["data"][7]), "(c h w) -> c h w", c=3, h=32).float()
    assert torch.allclose(img * 255, want, atol=1e-3)
    train_labels = sum((_cifar_pickle(root, f"data_batch_{i}")["labels"] for i in range(1, 6)), [])
    carved = task.sets["train"].labels.tolist() + task.sets["val"].labels.tolist()
    assert len(train_labels) == N_TRAIN and sorted(carved) == sorted(train_labels)


def test_cifar_fixture_is_what_torchvision_reads_when_its_md5_check_is_skipped(root, monkeypatch):
    from torchvision.datasets import CIFAR10, cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda path, md5=None: True)  # batches and batches.meta
    ds = CIFAR10(str(root), train=False)
    ours = _task(Cifar10, root).sets["test"]
    assert torch.equal(rearrange(torch.from_numpy(ds.data), "n h w c -> n c h w"), ours.images)
    assert ds.targets == ours.labels.tolist() and ds.classes == list(CIFAR_CLASSES)


def test_verify_true_uses_torchvisions_md5_check_and_a_fixture_fails_it_in_one_line(root):
    task = Cifar10(verify=True, data={"root": str(root)})
    task.check()  # the files are there
    with pytest.raises(FPTError, match="MD5") as e:
        task.setup()
    assert "\n" not in str(e.value) and "task.verify=false" in str(e.value)


def test_cifar10_lra_fpt_variant_is_1024_gray_values_through_a_linear(root):
    task = _task(Cifar10Lra, root, variant="fpt", augment=False)
    assert task.spec.seq_len == 1024 and task.spec.token_dim == 1 and task.spec.vocab_size is None
    x = task.sets["test"][5]["x"]
    enc = task.sets["test"].encode
    rgb = rearrange(_cifar_pickle(root, "test_batch")["data"][5].astype(np.float64), "(c t) -> c t", c=3)
    luma = np.asarray(LUMA) @ rgb / 255  # (1024,)
    gray = x[:, 0] * enc.std.flatten() + enc.mean.flatten()  # back on the [0, 1] scale
    assert x.shape == (1024, 1) and torch.allclose(gray.double(), torch.from_numpy(luma), atol=1e-5)


def test_cifar10_lra_lra_variant_is_1024_integer_ids_in_0_255(root):
    task = _task(Cifar10Lra, root, variant="lra")
    assert task.spec.vocab_size == 256 and task.spec.pad_id is None and task.spec.token_dim is None
    assert task.augment is False
    batch = next(iter(task.test_dataloader()))
    assert batch["x"].shape == (N_TEST, 1024) and batch["x"].dtype == torch.long
    rgb = rearrange(_cifar_pickle(root, "test_batch")["data"].astype(np.float64), "n (c t) -> n c t", c=3)
    want = np.round(np.einsum("c,nct->nt", np.asarray(LUMA), rgb))
    assert batch["x"].numpy().tolist() == want.astype(int).tolist()
    assert 0 <= int(batch["x"].min()) and int(batch["x"].max()) <= 255


def test_lra_ids_enter_through_a_256_entry_embedding_with_no_padding_row(gpt2_1024):
    from fpt.models.build import build_model

    model = build_model(compose_cfg("trunk=gpt2", f"trunk.path={gpt2_1024}", "task=cifar10_lra"), Cifar10Lra(variant="lra").spec)
    assert isinstance(model.input, torch.nn.Embedding) and model.input.weight.shape == (256, 32) and model.input.padding_idx is None


def test_1024_tokens_on_a_trunk_with_fewer_positions_is_a_one_line_error(tiny):
    from fpt.models.build import build_model

    with pytest.raises(FPTError, match="1024 tokens") as e:
        build_model(compose_cfg("trunk=bert", f"trunk.path={tiny['bert']}", "task=cifar10_lra"), Cifar10Lra().spec)
    assert "\n" not in str(e.value)


# --- patches, augmentation, splits -------------------------------------------------------------------
def test_a_patch_token_is_the_image_block_and_the_layout_inverts():
    img = torch.arange(3 * 32 * 32).view(3, 32, 32)
    tokens = patchify(img, 4)  # (64, 48)
    i, j = 2, 5  # patch row 2, column 5
    assert torch.equal(tokens[i * 8 + j], rearrange(img[:, 4 * i : 4 * i + 4, 4 * j : 4 * j + 4], "c p1 p2 -> (p1 p2 c)"))
    assert tokens[i * 8 + j, :3].tolist() == [img[0, 8, 20], img[1, 8, 20], img[2, 8, 20]]  # channels fastest
    assert torch.equal(_unpatch(tokens, 32, 4), img)
    batch = torch.stack([img, img + 1])
    assert torch.equal(patchify(batch, 4)[1], tokens + 1)


def test_augmentation_runs_on_train_only(root):
    task = _task(Cifar10, root)  # augment: true by default
    torch.manual_seed(0)
    train = task.sets["train"]
    draws = [train[0]["x"] for _ in range(6)]
    assert any(not torch.equal(draws[0], d) for d in draws[1:])  # random crop/flip/rotation
    assert all(train[0]["y"].item() == train.labels[0].item() for _ in range(3))
    for split in ("val", "test"):
        s = task.sets[split]
        assert s.augment is None and torch.equal(s[0]["x"], s.encode(s.images[0]))
    plain = _task(Cifar10, root, augment=False).sets["train"]
    assert torch.equal(plain[0]["x"], plain.encode(plain.images[0]))


def test_val_split_is_carved_from_train_disjoint_and_seeded():
    tr, va = carve(100, 20, None, seed=1)
    assert len(va) == 20 and len(tr) == 80 and sorted(tr.tolist() + va.tolist()) == list(range(100))
    tr2, va2 = carve(100, 20, None, seed=1)
    assert torch.equal(tr, tr2) and torch.equal(va, va2)
    assert not torch.equal(va, carve(100, 20, None, seed=2)[1])
    sub, va3 = carve(100, 20, 30, seed=1)
    assert torch.equal(va3, va) and torch.equal(sub, tr[:30])  # same val; train subsets are nested
    assert len(carve(100, 0.1, None, seed=1)[1]) == 10 and len(carve(100, 0.1, 0.5, seed=1)[0]) == 45


def test_task_val_images_come_from_the_training_file_and_the_test_file_is_used_in_full(root):
    task = Mnist(batch_size=8, val_size=N_VAL, eval_batch_size=7, data={"root": str(root), "train_size": 50})
    task.setup()
    every = Mnist(data={"root": str(root)}).read(True)[0]
    tr, va = carve(N_TRAIN, N_VAL, 50, seed=1234)
    assert torch.equal(task.sets["val"].images, every[va]) and torch.equal(task.sets["train"].images, every[tr])
    assert len(task.sets["train"]) == 50 and len(task.sets["val"]) == N_VAL
    sizes = [len(b["y"]) for b in task.test_dataloader()]
    assert sum(sizes) == N_TEST == (root / "MNIST/raw" / MNIST_NAMES[3]).stat().st_size - 8 and sizes[0] == 7


def test_loaders_use_worker_processes_that_give_the_same_batches(root):
    one = _task(Mnist, root)
    two = Mnist(batch_size=8, val_size=N_VAL, data={"root": str(root), "num_workers": 2})
    two.setup()
    loader = two.val_dataloader()
    assert loader.num_workers == 2 and loader.persistent_workers and loader.pin_memory == torch.cuda.is_available()
    assert torch.equal(next(iter(loader))["x"], next(iter(one.val_dataloader()))["x"])


# --- errors ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls, names", [(Mnist, MNIST_NAMES), (Cifar10, CIFAR_NAMES), (Cifar10Lra, CIFAR_NAMES)])
def test_missing_files_fail_fast_in_one_line_naming_them(tmp_path, cls, names):
    t0 = time.perf_counter()
    with pytest.raises(FPTError) as e:
        cls(data={"root": str(tmp_path)}).check()
    msg = str(e.value)
    assert time.perf_counter() - t0 < 1 and "\n" not in msg
    assert all(n in msg for n in names) and str(tmp_path) in msg and "data.download=true" in msg and "fpt data" in msg


def test_only_the_missing_file_is_named(root, tmp_path):
    shutil.copytree(root / "MNIST", tmp_path / "MNIST")
    (tmp_path / "MNIST/raw" / MNIST_NAMES[3]).unlink()
    with pytest.raises(FPTError) as e:
        Mnist(data={"root": str(tmp_path)}).check()
    assert MNIST_NAMES[3] in str(e.value) and MNIST_NAMES[2] not in str(e.value)


def test_truncated_or_foreign_idx_is_a_one_line_error_naming_the_file(root, tmp_path):
    shutil.copytree(root / "MNIST", tmp_path / "MNIST")
    images = tmp_path / "MNIST/raw" / MNIST_NAMES[0]
    images.write_bytes(images.read_bytes()[:5000])
    with pytest.raises(FPTError, match="truncated") as e:
        Mnist(data={"root": str(tmp_path)}).check()
    assert str(images) in str(e.value) and "\n" not in str(e.value)
    images.write_bytes(b"\x1f\x8b\x08\x00" + bytes(100))  # a gzip file under the IDX name
    with pytest.raises(FPTError, match="magic number 2051"):
        Mnist(data={"root": str(tmp_path)}).check()


def test_truncated_cifar_pickle_is_a_one_line_error_naming_the_file(root, tmp_path):
    shutil.copytree(root / "cifar-10-batches-py", tmp_path / "cifar-10-batches-py")
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:1000])
    task = Cifar10(data={"root": str(tmp_path)})
    task.check()
    with pytest.raises(FPTError, match="data_batch_3") as e:
        task.setup()
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("cls, options, words", [
    (Mnist, {"patch": 5}, "task.patch must be a divisor of the 28-pixel image side"),
    (Cifar10, {"patch": 3}, "task.patch must be a divisor of the 32-pixel image side"),
    (Cifar10Lra, {"variant": "vit"}, "task.variant must be fpt or lra"),
    (Cifar10Lra, {"variant": "lra", "augment": True}, "no augmentation"),
    (Cifar10, {"readout": "last_k"}, "task.readout must be last or mean"),
    (Cifar10, {"augment": "yes"}, "true or false"),
    (Mnist, {"val_size": 1.5}, "fraction"),
    (Mnist, {"val_size": -3}, "fraction"),
    (Mnist, {"data_seed": "abc"}, "integer"),
])
def test_bad_options_are_one_line_errors(cls, options, words):
    """Each image task's schema: the one check when the config is composed and the class is built (task_options)."""
    from fpt.config.schema import check

    with pytest.raises(FPTError, match=words) as e:
        check(cls.Options, options, "task")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("cls, options, words", [
    (Mnist, {"val_size": N_TRAIN}, "leaves no training"),  # caught by check(), from the IDX header
    (Cifar10, {"val_size": N_TRAIN}, "leaves no training"),  # caught when the pickles are read
    (Mnist, {"data": {"train_size": N_TRAIN}}, "between 1 and the 100"),
])
def test_split_options_that_do_not_fit_are_one_line_errors(root, cls, options, words):
    options = {"val_size": N_VAL, **options}
    options["data"] = {"root": str(root), **options.get("data", {})}
    with pytest.raises(FPTError, match=words) as e:
        task = cls(**options)
        task.check()
        task.setup()
    assert "\n" not in str(e.value)


def test_fpt_data_writes_the_fixture_files_it_lists(tmp_path, capsys):
    from fpt.cli import main

    assert main(["data", "mnist", f"out={tmp_path}", "n_train=12", "n_test=5"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith(str(tmp_path))]
    assert sorted(listed) == sorted(str(tmp_path / "MNIST/raw" / n) for n in [*MNIST_NAMES, "FPT_FIXTURE"])
    assert struct.unpack(">2I", (tmp_path / "MNIST/raw" / MNIST_NAMES[3]).read_bytes()[:8]) == (2049, 5)
    written = Cifar10Lra.write_data(tmp_path, n_train=10, n_test=4)  # cifar10_lra writes cifar10's files
    assert sorted(p.name for p in written) == sorted([*CIFAR_NAMES, "FPT_FIXTURE"]) and all(p.is_file() for p in written)
    assert len(_cifar_pickle(tmp_path, "test_batch")["labels"]) == 4


def test_fixture_writer_checks_options_and_never_overwrites_real_data(tmp_path):
    from fpt.config.sections import check_data_options

    with pytest.raises(FPTError, match="unknown option 'n_val'"):
        check_data_options(Mnist, {"n_val": 3}, "mnist")
    real = tmp_path / "cifar-10-batches-py"
    real.mkdir()
    (real / "data_batch_1").write_bytes(b"real data")
    with pytest.raises(FPTError, match="not written by fpt data"):
        Cifar10Lra.write_data(tmp_path, n_train=10, n_test=5)
    assert (real / "data_batch_1").read_bytes() == b"real data"


# --- end to end --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gpt2_1024(tmp_path_factory):
    """A one-block GPT-2 with 1024 positions: cifar10_lra's sequences fit."""
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("gpt2_1024")
    GPT2Model(GPT2Config(n_positions=1024, n_embd=32, n_layer=1, n_head=2, vocab_size=64)).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    """A smaller CIFAR-10 fixture: 1024-token sequences cost O(T^2) attention even on a tiny trunk."""
    d = tmp_path_factory.mktemp("small")
    Cifar10.write_data(d, n_train=24, n_test=8)
    return d


def _run(trunk, task, root, run_dir, *extra) -> dict:
    from fpt.run.train import train

    cfg = compose_cfg("trunk=gpt2", f"trunk.path={trunk}", f"task={task}", f"data.root={root}", "trainer.accelerator=cpu",
                      "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", *extra)
    return train(cfg, run_dir)


def _whole(x: float) -> bool:
    return abs(x - round(x)) < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("task", ["mnist", "cifar10"])
def test_patch_tasks_train_end_to_end_on_a_tiny_trunk(tiny, root, tmp_path, task):
    res = _run(tiny["gpt2"], task, root, tmp_path, "task.batch_size=8", f"task.val_size={N_VAL}",
               "trainer.max_steps=4", "trainer.val_check_interval=2")
    assert res["status"] == "ok" and res["task"] == task and res["steps"] == 4
    assert res["val/acc"] is not None and (tmp_path / "checkpoints" / "best.ckpt").is_file()
    assert _whole(res["test/acc"] * N_TEST)  # scored over the whole test file


def test_cifar10_lra_trains_end_to_end_on_a_1024_position_trunk(gpt2_1024, small_root, tmp_path):
    # the LRA variant: ids through the Embedding (the fpt variant's Linear path is the patch tasks')
    res = _run(gpt2_1024, "cifar10_lra", small_root, tmp_path, "task.variant=lra", "task.batch_size=4",
               "task.val_size=8", "trainer.max_steps=2", "trainer.val_check_interval=2")
    assert res["status"] == "ok" and res["steps"] == 2 and res["val/acc"] is not None and _whole(res["test/acc"] * 8)
    written = json.loads((tmp_path / "results.json").read_text())  # the logistic-regression reference, after the scores
    assert _whole(written["baseline/logreg_acc"] * 8) and written["baseline/logreg_c"] in GRID


def test_training_keys_seed_the_augmentation_by_run_seed_epoch_and_index(root):
    train = _task(Cifar10, root).sets["train"]
    torch.manual_seed(0)
    a, b = train[(3, 1)]["x"], train[(3, 1)]["x"]
    assert torch.equal(a, b)  # the same example in the same epoch: the same crop, flip and rotation
    assert not torch.equal(a, train[(3, 2)]["x"])  # another epoch: another augmentation
