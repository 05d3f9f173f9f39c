"""The image tasks' files (the tasks themselves: tasks/images.py): MNIST's IDX header check, and the fixtures
`fpt data mnist|cifar10|cifar10_lra out=DIR` writes in the real formats (MNIST-like digits as IDX files, CIFAR-like
gratings as pickled batches).
"""

from __future__ import annotations

import math
import pickle
import struct
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from fpt.errors import FPTError


def idx_dims(path: Path, magic: int) -> tuple[int, ...]:
    """The dims in an uncompressed IDX file's header, after checking its magic number and its length."""
    ndim = magic & 0xFF
    with open(path, "rb") as f:
        head = f.read(4 + 4 * ndim)
    if len(head) < 4 + 4 * ndim or int.from_bytes(head[:4], "big") != magic:
        raise FPTError(f"{path} is not an uncompressed IDX file (magic number {magic} expected); "
                       f"download it again (data.download=true) or rewrite the fixture (fpt data mnist out=DIR)")
    dims = struct.unpack(f">{ndim}I", head[4:])
    want, have = len(head) + math.prod(dims), path.stat().st_size
    if have != want:
        raise FPTError(f"{path} is truncated or corrupt: its header says {' x '.join(map(str, dims))} ({want} bytes) "
                       f"but the file has {have} bytes; download it again (data.download=true) or rewrite the fixture")
    return dims


def digits(n: int, train: bool, g: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n MNIST-like uint8 28x28 digits from scikit-learn's 1,797 real 8x8 ones (last 297 held out for test)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise FPTError("the MNIST fixture is made from scikit-learn's digits: pip install scikit-learn") from None
    digits = load_digits()
    pool = slice(0, 1500) if train else slice(1500, None)
    src = torch.from_numpy(digits.images[pool]).float() / 16  # (m, 8, 8) in [0, 1]
    pick = torch.randint(0, len(src), (n,), generator=g)
    big = torch.nn.functional.interpolate(src[pick, None], size=20, mode="bilinear", align_corners=False)
    img = torch.nn.functional.pad(big[:, 0], (4, 4, 4, 4))  # MNIST: a 20x20 digit centred in 28x28
    shifts = torch.randint(-1, 2, (n, 2), generator=g)  # jitter, so resampled digits are not copies
    img = torch.stack([torch.roll(im, (int(a), int(b)), (0, 1)) for im, (a, b) in zip(img, shifts)])
    img = img * 255 + 12 * torch.randn(img.shape, generator=g)
    return img.round().clamp(0, 255).to(torch.uint8).numpy(), digits.target[pool][pick.numpy()].astype(np.uint8)


def write_idx(path: Path, magic: int, array: np.ndarray) -> Path:
    """An uncompressed IDX file: big-endian magic and dims, then the ubyte data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack(f">I{array.ndim}I", magic, *array.shape) + np.ascontiguousarray(array, np.uint8).tobytes())
    return path


def gratings(n: int, g: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n CIFAR-like images, data (n, 3072) uint8 R,G,B planes: a class colour and grating orientation/frequency, plus noise."""
    labels = torch.randperm(n, generator=g) % 10  # balanced classes
    hue = labels.double() * 2 * math.pi / 10
    colour = torch.stack([hue, hue + 2 * math.pi / 3, hue + 4 * math.pi / 3], 1).cos() * 0.35 + 0.5  # (n, 3)
    angle = (labels % 2).double() * math.pi / 2  # 0 or 90 degrees: survives the +-20 degree augmentation
    freq = 2 * math.pi / (3 + labels // 2).double()  # 5 wavelengths, 3..7 pixels
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    phase = torch.rand(n, generator=g, dtype=torch.float64) * 2 * math.pi
    along = xx * angle.cos().view(-1, 1, 1) + yy * angle.sin().view(-1, 1, 1)  # (n, 32, 32)
    grating = 0.5 + 0.5 * torch.sin(freq.view(-1, 1, 1) * along + phase.view(-1, 1, 1))
    noise = 20 * torch.randn((n, 3, 32, 32), generator=g, dtype=torch.float64)
    img = 255 * colour.view(-1, 3, 1, 1) * (0.4 + 0.6 * grating[:, None]) + noise  # (n, 3, 32, 32)
    data = rearrange(img.round().clamp(0, 255).to(torch.uint8), "n c h w -> n (c h w)")
    return data.numpy(), labels.numpy()


def write_pickle(path: Path, obj: dict) -> Path:
    """`obj` pickled as CIFAR-10's own batch files are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # the protocol of the original files
    return path
