"""What the image tasks share: options, the seeded train/val carve, pixels to patch tokens, the augmentation,
the dataset and the task plumbing (check, read once, carve, loaders), and the rule that a fixture never
overwrites real data. The tasks themselves (MNIST, CIFAR-10, CIFAR-10 LRA) are in tasks/images.py.

Axes: n images, c channels, h w the patch grid, p1 p2 pixels inside a patch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable

import torch
from einops import rearrange
from torch.utils.data import DataLoader, Dataset

from fpt.errors import FPTError
from fpt.config.schema import Count, CountOrNull, Flag, NonNegative, Options, SequenceReadout, rule
from fpt.tasks.base import Task, TaskOptions
from fpt.tasks.loading import loader
from fpt.tasks.image_splits import CountOrFraction, carve
from fpt.tasks.sampling import epoch_batches, example_seed, shuffled_batches

FIXTURE_MARKER = "FPT_FIXTURE"  # written by `fpt data`: the folder is a small synthetic fixture
LUMA = (0.2989, 0.587, 0.114)  # ITU-R 601-2, as PIL, torchvision and LRA's tf.image.rgb_to_grayscale
CROP_PAD, ROTATE_DEGREES = 4, 20  # the paper code's augmentation: RandomCrop(32, padding=4), flip, RandomRotation(20)


# --- options --------------------------------------------------------------------------------------
def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def patch_of(side: int):
    """A patch side dividing the `side`-pixel image side."""
    divisors = ", ".join(str(d) for d in range(1, side + 1) if side % d == 0)
    return rule(int, lambda v: v >= 1 and side % v == 0, f"a divisor of the {side}-pixel image side ({divisors})")


class ImageOptions(TaskOptions):
    val_size: CountOrFraction = 0.1
    data_seed: NonNegative = 1234
    readout: SequenceReadout = "last"
    eval_batch_size: CountOrNull = None  # null: max(batch_size, 64)
    augment: Flag = False


class FixtureOptions(Options):
    """`fpt data mnist|cifar10 out=DIR n_train=.. n_test=.. seed=..`."""

    n_train: Count = 1000
    n_test: Count = 200
    seed: NonNegative = 0


# --- pixels -> tokens -----------------------------------------------------------------------------
def patchify(img: torch.Tensor, patch: int) -> torch.Tensor:
    """(..., c, H, W) -> (..., (H/p)(W/p), p*p*c): patches row by row, channels fastest inside a patch."""
    return rearrange(img, "... c (h p1) (w p2) -> ... (h w) (p1 p2 c)", p1=patch, p2=patch)


def to_gray(img: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) -> (..., 1, H, W) float luma, on the input's scale."""
    w = torch.tensor(LUMA, dtype=torch.float64 if img.dtype == torch.float64 else torch.float32)
    return (img.to(w.dtype) * w.view(3, 1, 1)).sum(-3, keepdim=True)


class PatchTokens:
    """uint8 (c, H, W) -> float (T, p*p*c'): scaled to [0, 1], luma if gray, standardised if stats, patched."""

    def __init__(self, patch: int, gray: bool = False, stats: tuple[list[float], list[float]] | None = None):
        self.patch, self.gray = patch, gray
        self.mean, self.std = (torch.tensor(s).view(-1, 1, 1) for s in stats) if stats else (None, None)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        x = img.float() / 255
        x = to_gray(x) if self.gray else x
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return patchify(x, self.patch)  # (T, p*p*c)


class GrayIds:
    """uint8 (3, H, W) -> long (H*W,): LRA's rounded luma 0..255, one pixel per token."""

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        return rearrange(to_gray(img).round().clamp(0, 255).long(), "1 h w -> (h w)")


def channel_stats(images: torch.Tensor, gray: bool = False) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 (n, c, H, W) images on the [0, 1] scale (of the luma if gray)."""
    s = s2 = 0.0
    count = 0
    for chunk in images.split(4096):  # chunks: a float copy of all of CIFAR would take 1.2 GB
        x = chunk.double() / 255
        x = to_gray(x) if gray else x
        s, s2 = s + x.sum((0, 2, 3)), s2 + (x * x).sum((0, 2, 3))
        count += x.shape[0] * x.shape[2] * x.shape[3]
    mean = s / max(count, 1)
    std = (s2 / max(count, 1) - mean * mean).clamp_min(1e-12).sqrt()
    return mean.tolist(), std.tolist()


def paper_augment(side: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The FPT paper's training augmentation on uint8 (c, H, W): pad-4 random crop, h-flip, +-20 deg rotation."""
    from torchvision.transforms import v2

    return v2.Compose([v2.RandomCrop(side, padding=CROP_PAD), v2.RandomHorizontalFlip(), v2.RandomRotation(ROTATE_DEGREES)])


class ImageSet(Dataset):
    """Items {x, mask, y} from uint8 images; `augment` (train only) runs before encoding, in the workers."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, encode: Callable, augment: Callable | None = None,
                 seed: int = 0):
        self.images, self.labels, self.encode, self.augment, self.seed = images, labels, encode, augment, seed

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        """Key: an index, or (index, epoch) from the training sampler: the augmentation is then seeded by
        (run seed, epoch, index), the same on every run and on resume, in any worker."""
        i, epoch = key if isinstance(key, tuple) else (key, None)
        img = self.images[i]  # (c, H, W) uint8
        if self.augment is not None and epoch is None:  # a plain index: the global generator decides
            img = self.augment(img)
        elif self.augment is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(example_seed(self.seed, epoch, i))
                img = self.augment(img)
        x = self.encode(img)  # (T, D) float or (T,) long
        return {"x": x, "mask": torch.ones(x.shape[0], dtype=torch.bool), "y": self.labels[i : i + 1]}


# --- the task plumbing ----------------------------------------------------------------------------
class ImageTask(Task, ABC):
    """Shared plumbing: check the files, read them once, carve val from train, build the loaders.

    Subclasses say which files they need (`required`), how to read a split (`read`), how to
    fetch it (`download`), and how an image becomes tokens (`encoder`).
    """

    side: int  # image side in pixels
    dataset: str  # the name users know, for messages
    Options = ImageOptions
    DataOptions = FixtureOptions
    options: ImageOptions

    def __init__(self, options: ImageOptions | None = None, **kw):
        super().__init__(options, **kw)
        self.sets: dict[str, ImageSet] = {}

    @property
    def augment(self) -> bool:
        """Whether training images are augmented (`task.augment`)."""
        return self.options.augment

    # subclass interface (abstract: a subclass missing one cannot be instantiated)
    @abstractmethod
    def required(self) -> list[Path]:
        """Every file this task reads."""

    @abstractmethod
    def read(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images (n, c, H, W) and long labels (n,) of the train or test file."""

    @abstractmethod
    def download(self) -> None:
        """Fetch the files through torchvision (data.download=true)."""

    @abstractmethod
    def encoder(self, train_images: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """The image -> tokens map; normalisation statistics come from the training file."""

    @abstractmethod
    def how_to_get(self) -> str:
        """The end of the missing-files message."""

    def check_format(self) -> None:
        """Cheap format checks (headers, sizes) that can run before the trunk loads."""

    def data_files(self) -> list[Path]:
        return self.required()

    # Task / LightningDataModule hooks
    def check(self) -> None:
        """One-line FPTError naming the missing files, where they were looked for, and how to get them."""
        if self.data.get("download"):
            return  # prepare_data fetches them
        missing = [p for p in self.required() if not p.is_file()]
        if missing:
            folder = missing[0].parent
            names = ", ".join(p.name + (" (found .gz: gunzip it)" if p.with_name(p.name + ".gz").is_file() else "") for p in missing)
            raise FPTError(f"{self.dataset} files missing in {folder}: {names}; {self.how_to_get()}")
        self.check_format()

    def prepare_data(self) -> None:
        """Download through torchvision when data.download=true (Lightning runs this once per node)."""
        if self.data.get("download"):
            self.download()

    def setup(self, stage: str | None = None) -> None:
        """Read both files, derive the encoder from TRAIN, carve train/val; test is the test file."""
        if self.sets:  # fit, validate and test share one read
            return
        images, labels = self.read(True)
        test_images, test_labels = self.read(False)
        encode = self.encoder(images)
        train_idx, val_idx = carve(len(labels), self.options.val_size, self.train_size, self.options.data_seed)
        augment = paper_augment(self.side) if self.augment else None
        self.sets = {
            "train": ImageSet(images[train_idx], labels[train_idx], encode, augment, seed=self.seed),
            "train_eval": ImageSet(images[train_idx], labels[train_idx], encode),  # the same images, never augmented
            "val": ImageSet(images[val_idx], labels[val_idx], encode),
            "test": ImageSet(test_images, test_labels, encode),  # the official test file, in full
        }

    def baselines(self) -> dict:
        """Logistic regression on the pixels of the same splits (tasks/pixel_logreg.py): the non-transformer reference."""
        from fpt.tasks.pixel_logreg import logreg_baseline

        self.setup()
        return logreg_baseline(*((self.sets[k].images.numpy(), self.sets[k].labels.numpy()) for k in ("train_eval", "val", "test")),
                               seed=self.options.data_seed)

    def _loader(self, split: str) -> DataLoader:
        # augmentation and encoding run in the workers; pinned memory only helps a CUDA copy
        if split != "train":
            return loader(self.sets[split], self.data, batch_size=self.options.eval_batch_size or max(self.batch_size, 64))
        n = len(self.sets["train"])
        if self.trainer is not None and self.trainer.world_size > 1:  # Lightning shards a plain sampler over the ranks
            return loader(self.sets[split], self.data, batch_size=self.batch_size, shuffle=True,
                          generator=torch.Generator().manual_seed(self.seed))
        order = epoch_batches(self.trainer, lambda epoch: shuffled_batches(n, self.batch_size, self.seed, epoch), with_epoch=True)
        return loader(self.sets[split], self.data, batch_sampler=order)

    def train_dataloader(self) -> DataLoader:
        """Shuffled, augmented (if on) training batches."""
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        """The validation split carved from TRAIN, in a fixed order."""
        return self._loader("val")

    def train_eval_dataloader(self) -> DataLoader:
        """The training images without augmentation, in a fixed order (train/acc of the selected model)."""
        self.setup()
        return self._loader("train_eval")

    def test_dataloader(self) -> DataLoader:
        """Every image of the official test file, in a fixed order."""
        return self._loader("test")


# --- fixtures: ownership --------------------------------------------------------------
def _claim(folder: Path, probe: str, task: str) -> None:
    """Never overwrite real data with a fixture: only an empty folder or an earlier fixture is written to."""
    if (folder / probe).exists() and not (folder / FIXTURE_MARKER).is_file():
        raise FPTError(f"{folder} already holds {probe} not written by fpt data; choose another out= for the {task} fixture")


def _mark(folder: Path, task: str) -> Path:
    path = folder / FIXTURE_MARKER
    path.write_text(f"written by `fpt data {task}`: a small synthetic fixture, not the real dataset; read without MD5 checks\n")
    return path


def _refuse_fixture(folder: Path, task: str) -> None:
    if (folder / FIXTURE_MARKER).is_file():
        raise FPTError(f"{folder} holds a fixture written by fpt data {task}; point data.root at another folder to download the real data")
