"""MNIST, CIFAR-10 and CIFAR-10 LRA as token sequences, read from torchvision's on-disk layout (what they share:
tasks/image_base.py).

Axes: n images, c channels, h w the patch grid, p1 p2 pixels inside a patch.

Every task carves a seeded validation split out of TRAIN (`task.val_size`), may subsample what is
left (`data.train_size`, read by Task.train_size; nested: a smaller train set is a subset of a
larger one, and val never changes), and tests on the official test file in full. Pixels are
standardised with the per-channel mean/std of the training file (for the real files: MNIST
0.1307/0.3081, CIFAR-10 0.4914,0.4822,0.4465 / 0.2470,0.2435,0.2616). Augmentation runs per image
inside the DataLoader's workers, on TRAIN only.

Files: `<root>/MNIST/raw/*-ubyte` (four uncompressed IDX files) and `<root>/cifar-10-batches-py/`
(pickled `data_batch_1..5`, `test_batch`, `batches.meta`). torchvision reads them; CIFAR-10 goes
through torchvision's MD5-checked loader unless the folder is a fixture written by `fpt data`
(marker file FPT_FIXTURE) or `task.verify=false`, which read the pickles here, unchecked.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from einops import rearrange
from pydantic import model_validator

from fpt.errors import FPTError
from fpt.config.schema import Flag, FlagOrNull, Invalid, choice
from fpt.tasks.base import TaskSpec
from fpt.tasks.image_base import (FIXTURE_MARKER, GrayIds, ImageOptions, ImageTask, PatchTokens, _claim, _first_line, _mark,
                              _refuse_fixture, channel_stats, patch_of)
from fpt.tasks.image_splits import split_sizes
from fpt.tasks.image_files import digits, gratings, idx_dims, write_idx, write_pickle
from fpt.tasks.loading import SafeUnpickler

MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}  # train? -> (images, labels)
IDX_IMAGES, IDX_LABELS = 2051, 2049  # IDX magic: 0x08 (ubyte) in byte 3, the number of dims in byte 4
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_FILES = {True: tuple(f"data_batch_{i}" for i in range(1, 6)), False: ("test_batch",)}
CIFAR_META = "batches.meta"
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# --- MNIST ----------------------------------------------------------------------------------------
class MnistOptions(ImageOptions):
    patch: patch_of(28) = 4
    normalize: Flag = True


class Mnist(ImageTask):
    """MNIST digits: 28x28 gray cut into patch x patch tokens (4: 49 tokens of 16 features), 10 classes."""

    side, dataset = 28, "MNIST"
    Options = MnistOptions
    options: MnistOptions

    def __init__(self, options: MnistOptions | None = None, **kw):
        super().__init__(options, **kw)
        o = self.options
        grid = self.side // o.patch
        self.spec = TaskSpec(seq_len=grid * grid, token_dim=o.patch**2, num_classes=10, readout=o.readout)

    @property
    def raw(self) -> Path:
        """<root>/MNIST/raw, where torchvision keeps the IDX files."""
        return self.root / "MNIST" / "raw"

    def required(self) -> list[Path]:
        return [self.raw / name for train in (True, False) for name in MNIST_FILES[train]]

    def how_to_get(self) -> str:
        return (f"get them with data.download=true (needs a network), or from {MNIST_URL} (gunzip into that folder), "
                f"or write a small fixture with: fpt data mnist out=DIR")

    def check_format(self) -> None:
        for train in (True, False):
            images, labels = (self.raw / name for name in MNIST_FILES[train])
            n, h, w = idx_dims(images, IDX_IMAGES)
            (m,) = idx_dims(labels, IDX_LABELS)
            if (h, w) != (28, 28) or n != m:
                raise FPTError(f"{images} holds {n} images of {h}x{w} and {labels} {m} labels; MNIST has 28x28 images, one label each")
            if train:
                split_sizes(n, self.options.val_size, self.train_size)

    def read(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        from torchvision.datasets import MNIST

        self.check_format()  # torchvision would fail on a short file with an unhelpful reshape error
        try:
            ds = MNIST(str(self.root), train=train)
        except Exception as e:
            raise FPTError(f"cannot read MNIST from {self.raw}: {_first_line(e)}") from None
        return rearrange(ds.data, "n h w -> n 1 h w"), _labels(ds.targets, self.raw / MNIST_FILES[train][1])

    def download(self) -> None:
        from torchvision.datasets import MNIST

        _refuse_fixture(self.raw, "mnist")
        try:
            for train in (True, False):
                MNIST(str(self.root), train=train, download=True)
        except Exception as e:
            raise FPTError(f"could not download MNIST into {self.raw}: {_first_line(e)}; files are at {MNIST_URL}") from None

    def encoder(self, train_images: torch.Tensor) -> PatchTokens:
        return PatchTokens(self.options.patch, stats=channel_stats(train_images) if self.options.normalize else None)

    @classmethod
    def write_data(cls, out: Path, n_train: int = 1000, n_test: int = 200, seed: int = 0) -> list[Path]:
        """A small learnable MNIST fixture: scikit-learn's 8x8 digits, upscaled, in MNIST's four IDX files."""
        raw = Path(out) / "MNIST" / "raw"
        _claim(raw, MNIST_FILES[True][0], "mnist")
        g = torch.Generator().manual_seed(seed)
        written = []
        for train, n in ((True, n_train), (False, n_test)):
            images, labels = digits(n, train, g)
            written += [write_idx(raw / MNIST_FILES[train][0], IDX_IMAGES, images),
                        write_idx(raw / MNIST_FILES[train][1], IDX_LABELS, labels)]
        return written + [_mark(raw, "mnist")]


def _labels(targets, source: Path) -> torch.Tensor:
    y = torch.as_tensor(targets, dtype=torch.long)
    if len(y) and (int(y.min()) < 0 or int(y.max()) > 9):
        raise FPTError(f"{source} has labels outside 0..9 (min {int(y.min())}, max {int(y.max())})")
    return y


# --- CIFAR-10 -------------------------------------------------------------------------------------
def read_cifar_batch(path: Path) -> tuple[np.ndarray, list[int]]:
    """data (n, 3072) uint8 and labels of one CIFAR-10 pickle, read without torchvision's MD5 check."""
    try:
        with open(path, "rb") as f:
            entry = SafeUnpickler(f, encoding="latin1").load()
        entry = {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}
        data, labels = entry["data"], list(entry["labels"])
    except Exception as e:  # truncated, not a pickle, or not a CIFAR batch
        raise FPTError(f"cannot read CIFAR-10 batch {path}: {_first_line(e)}; it is truncated or not a CIFAR-10 pickle") from None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise FPTError(f"{path} is not a CIFAR-10 batch: expected uint8 data of n x 3072 and n labels")
    return data, labels


class _Cifar(ImageTask):
    """CIFAR-10's files: torchvision's MD5-checked loader, or the unchecked pickle reader for fixtures."""

    side, dataset = 32, "CIFAR-10"
    options: CifarOptions

    @property
    def folder(self) -> Path:
        """<root>/cifar-10-batches-py, as the official archive extracts."""
        return self.root / CIFAR_DIR

    def required(self) -> list[Path]:
        return [self.folder / name for name in (*CIFAR_FILES[True], *CIFAR_FILES[False], CIFAR_META)]

    def how_to_get(self) -> str:
        return (f"get them with data.download=true (needs a network), or extract {CIFAR_URL} into {self.root}, "
                f"or write a small fixture with: fpt data cifar10 out=DIR")

    def checked(self) -> bool:
        """torchvision's MD5 check applies unless turned off or the folder is a fixture of ours."""
        verify = self.options.verify
        return verify if verify is not None else not (self.folder / FIXTURE_MARKER).is_file()

    def read(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if self.checked():
            data, labels = self._read_torchvision(train)
        else:
            parts = [read_cifar_batch(self.folder / name) for name in CIFAR_FILES[train]]
            data = rearrange(np.concatenate([d for d, _ in parts]), "n (c h w) -> n h w c", c=3, h=32)
            labels = [y for _, ys in parts for y in ys]
        images = rearrange(torch.from_numpy(np.ascontiguousarray(data)), "n h w c -> n c h w").contiguous()
        return images, _labels(labels, self.folder / CIFAR_FILES[train][0])

    def _read_torchvision(self, train: bool) -> tuple[np.ndarray, list[int]]:
        from torchvision.datasets import CIFAR10

        try:
            ds = CIFAR10(str(self.root), train=train)
        except RuntimeError:  # torchvision's "Dataset not found or corrupted"
            raise FPTError(f"{self.folder} fails torchvision's MD5 check (corrupt, or not the official CIFAR-10 files); "
                           f"download again (data.download=true), or set task.verify=false to read them unchecked") from None
        return ds.data, ds.targets  # (n, 32, 32, 3) uint8 HWC, labels

    def download(self) -> None:
        from torchvision.datasets import CIFAR10

        _refuse_fixture(self.folder, "cifar10")
        try:
            CIFAR10(str(self.root), train=True, download=True)  # one tarball holds every batch
        except Exception as e:
            raise FPTError(f"could not download CIFAR-10 into {self.root}: {_first_line(e)}; the archive is {CIFAR_URL}") from None

    @classmethod
    def write_data(cls, out: Path, n_train: int = 1000, n_test: int = 200, seed: int = 0) -> list[Path]:
        """A small learnable CIFAR-10 fixture (class-coloured gratings + noise) in the real pickle layout."""
        folder = Path(out) / CIFAR_DIR
        _claim(folder, CIFAR_FILES[True][0], "cifar10")
        g = torch.Generator().manual_seed(seed)
        written = []
        for train, n in ((True, n_train), (False, n_test)):
            data, labels = gratings(n, g)
            names = CIFAR_FILES[train]
            for i, (d, y) in enumerate(zip(np.array_split(data, len(names)), np.array_split(labels, len(names)))):
                label = f"training batch {i + 1} of 5" if train else "testing batch 1 of 1"
                written.append(write_pickle(folder / names[i], {"batch_label": label, "labels": y.tolist(), "data": d,
                                                           "filenames": [f"fixture_{j:05d}.png" for j in range(len(y))]}))
        per_batch = math.ceil(n_train / 5)
        meta = {"num_cases_per_batch": per_batch, "label_names": list(CIFAR_CLASSES), "num_vis": 3072}
        written.append(write_pickle(folder / CIFAR_META, meta))
        return written + [_mark(folder, "cifar10")]


class CifarOptions(ImageOptions):
    verify: FlagOrNull = None  # torchvision's MD5 check: null checks unless the folder is an `fpt data` fixture


class Cifar10Options(CifarOptions):
    patch: patch_of(32) = 4
    normalize: Flag = True
    augment: Flag = True


class Cifar10(_Cifar):
    """CIFAR-10: 32x32 RGB cut into patch x patch tokens (4: 64 tokens of 48 features), 10 classes."""

    Options = Cifar10Options
    options: Cifar10Options

    def __init__(self, options: Cifar10Options | None = None, **kw):
        super().__init__(options, **kw)
        o = self.options
        grid = self.side // o.patch
        self.spec = TaskSpec(seq_len=grid * grid, token_dim=3 * o.patch**2, num_classes=10, readout=o.readout)

    def encoder(self, train_images: torch.Tensor) -> PatchTokens:
        return PatchTokens(self.options.patch, stats=channel_stats(train_images) if self.options.normalize else None)


class Cifar10LraOptions(CifarOptions):
    variant: choice("fpt", "lra") = "fpt"
    augment: FlagOrNull = None  # null: the variant's own
    normalize: FlagOrNull = None

    @model_validator(mode="after")
    def _lra_is_raw(self):
        if self.variant == "lra" and (self.augment or self.normalize):
            raise Invalid("task.variant=lra feeds raw gray ids with no augmentation (LRA's benchmark); "
                          "leave task.augment and task.normalize null, or use task.variant=fpt")
        return self


class Cifar10Lra(_Cifar):
    """CIFAR-10 in grayscale, one pixel per token (1024 tokens), in one of two variants.

    variant=fpt (the FPT paper): gray values in [0, 1] (standardised unless normalize=false) through a
    Linear layer, 1024 x 1, the paper's augmentation on by default.
    variant=lra (Long Range Arena): gray ints 0..255 as ids through a 256-entry Embedding, no pad id
    (every value is a pixel), no augmentation; with the default val_size 0.1: LRA's 45k/5k/10k split.
    It reads cifar10's files (and `fpt data cifar10_lra` writes the same fixture).
    """

    Options = Cifar10LraOptions
    options: Cifar10LraOptions

    def __init__(self, options: Cifar10LraOptions | None = None, **kw):
        super().__init__(options, **kw)
        o, tokens = self.options, self.side * self.side
        if o.variant == "lra":
            self.spec = TaskSpec(seq_len=tokens, vocab_size=256, pad_id=None, num_classes=10, readout=o.readout)
        else:
            self.spec = TaskSpec(seq_len=tokens, token_dim=1, num_classes=10, readout=o.readout)

    @property
    def augment(self) -> bool:
        """`task.augment`; null: the variant's own (fpt: the paper's augmentation, lra: none)."""
        return self.options.variant == "fpt" if self.options.augment is None else self.options.augment

    @property
    def normalize(self) -> bool:
        """`task.normalize`; null: the variant's own (fpt: standardised gray values, lra: raw ids)."""
        return self.options.variant == "fpt" if self.options.normalize is None else self.options.normalize

    def encoder(self, train_images: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        if self.options.variant == "lra":
            return GrayIds()
        return PatchTokens(1, gray=True, stats=channel_stats(train_images, gray=True) if self.normalize else None)
