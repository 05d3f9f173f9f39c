"""Bit memory and bit XOR: the paper's definitions, seeded streams, fixed evaluation sets."""

import torch
from einops import rearrange

from fpt.tasks.bits import BitMemory, BitXor


def _decode(x):  # +-1 -> {0,1}
    return (x > 0).long()


def test_xor_targets_are_the_xor_of_the_two_strings():
    t = BitXor(n_bits=5)
    x, y = t.sample(512, torch.Generator().manual_seed(0))
    assert x.shape == (512, 10, 1) and y.shape == (512, 5)
    bits = _decode(x[..., 0])
    assert torch.equal(y, bits[:, :5] ^ bits[:, 5:])
    assert set(x.unique().tolist()) == {-1.0, 1.0}
    assert 0.45 < y.float().mean() < 0.55
    assert (t.spec.seq_len, t.spec.token_dim, t.spec.k, t.spec.n_targets) == (10, 1, 5, 5)


def test_memory_target_is_the_shown_string_with_unmasked_bits_visible():
    t = BitMemory()  # the paper's size: 6 strings x 20 patches of 50 bits
    x, y = t.sample(64, torch.Generator().manual_seed(0))
    assert x.shape == (64, 120, 50) and y.shape == (64, 1000)
    seq = rearrange(x, "n (s k) p -> n s (k p)", s=6)  # back to 6 strings of 1000 bits
    strings, query = seq[:, :5], seq[:, 5]
    matches = (_decode(strings) == y[:, None]).all(-1)  # which stored string is the target
    assert matches.any(1).all()
    shown = query != 0
    assert torch.equal(_decode(query)[shown], y[shown])  # visible bits agree with the target
    assert abs(shown.float().mean().item() - 0.5) < 0.02  # mask_prob 0.5
    assert (t.spec.seq_len, t.spec.k, t.spec.targets_per_position, t.spec.n_targets) == (120, 20, 50, 1000)


def test_small_memory_variant_shapes():
    t = BitMemory(n_bits=100, patch=10, mask_prob=0.25)
    x, y = t.sample(4, torch.Generator().manual_seed(1))
    assert x.shape == (4, 60, 10) and y.shape == (4, 100)


def _first(loader):
    return next(iter(loader))


def test_train_stream_is_fresh_seeded_and_resumable():
    t = BitXor(seed=3)
    stream = iter(t.train_dataloader())
    b0, b1 = next(stream), next(stream)
    assert not torch.equal(b0["x"], b1["x"])  # fresh samples every step
    again = iter(BitXor(seed=3).train_dataloader())
    assert torch.equal(next(again)["x"], b0["x"])  # same seed, same stream
    other = _first(BitXor(seed=4).train_dataloader())
    assert not torch.equal(other["x"], b0["x"])
    from fpt.tasks.bits import _Stream

    resumed = next(iter(_Stream(t.sample, t.batch_size, 3, start=1)))
    assert torch.equal(resumed["x"], b1["x"])  # a resumed run continues the same stream


def test_val_and_test_are_fixed_across_run_seeds_and_distinct():
    a, b = BitXor(seed=0), BitXor(seed=9)
    va, vb = _first(a.val_dataloader()), _first(b.val_dataloader())
    assert torch.equal(va["x"], vb["x"])
    assert not torch.equal(va["x"], _first(a.test_dataloader())["x"])
    assert sum(len(batch["y"]) for batch in a.test_dataloader()) == 1000


def test_train_size_draws_from_a_fixed_pool():
    t = BitMemory(n_bits=20, patch=5, data={"train_size": 8})
    stream = iter(t.train_dataloader())
    seen = {tuple(row.flatten().tolist()) for _ in range(20) for row in next(stream)["x"]}
    assert len(seen) <= 8 and len(seen) >= 6  # 320 draws from a pool of 8
    import pytest

    from fpt.errors import FPTError
    from fpt.config.schema import check
    from fpt.config.sections import Data

    with pytest.raises(FPTError, match="data.train_size must be a positive integer or null, got 0"):
        check(Data, {"train_size": 0}, "data")  # checked when the config is composed, not by the task
