"""The shared sequence-task module: ragged splits, the hashed cache, cutting, padding, and a new task in a few lines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fpt.config.schema import Count
from fpt.tasks.base import TaskOptions, TaskSpec
from fpt.tasks.sequences import Examples, PadCollate, Ragged, SequenceTask, cached


def test_ragged_of_subset_and_lengths():
    r = Ragged.of([[3, 4, 5], [6], [7, 8]], [0, 1, 2])
    assert r.lengths.tolist() == [3, 1, 2] and r.offsets.tolist() == [0, 3, 4, 6] and len(r) == 3
    s = r.subset([2, 0])
    assert s.tokens.tolist() == [7, 8, 3, 4, 5] and s.labels.tolist() == [2, 0] and s.lengths.tolist() == [2, 3]
    assert len(r.subset([])) == 0 and r.subset([]).offsets.tolist() == [0]


def test_cache_is_keyed_by_bytes_and_settings_and_survives_damage(tmp_path):
    src = tmp_path / "train.txt"
    src.write_text("a b\n")
    calls = []

    def build():
        calls.append(1)
        return Ragged.of([[1, 2]], [0], src)

    first = cached(src, "v1", "settings A", build)
    again = cached(src, "v1", "settings A", build)
    assert len(calls) == 1 and again.tokens.tolist() == [1, 2] and again.source == src
    cached(src, "v1", "settings B", build)  # other settings: rebuilt, and the older cache of the same tag goes
    assert len(calls) == 2 and len(list((tmp_path / ".cache").glob("train.txt.v1.*.npz"))) == 1
    (only,) = (tmp_path / ".cache").glob("*.npz")
    only.write_bytes(b"not a zip")  # damaged: rebuilt, not an error
    assert cached(src, "v1", "settings B", build).labels.tolist() == [0] and len(calls) == 3
    assert first.offsets.tolist() == [0, 2]


def test_a_read_only_folder_tokenizes_every_run_with_one_note(tmp_path, capsys, monkeypatch):
    src = tmp_path / "x.txt"
    src.write_text("1\n")
    import fpt.tasks.sequences as seq

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(seq, "_write", refuse)
    out = cached(src, "t", "s", lambda: Ragged.of([[1]], [0], src))
    err = capsys.readouterr().err.strip().splitlines()
    assert out.tokens.tolist() == [1] and len(err) == 1 and "cannot cache" in err[0] and "Permission denied" in err[0]


def test_examples_cut_first_tokens_or_keep_the_end_marker():
    r = Ragged.of([[2, 5, 6, 7, 8, 3], [2, 5, 3]], [1, 0])
    assert Examples(r, 4)[0][0].tolist() == [2, 5, 6, 7] and Examples(r, 4)[1][0].tolist() == [2, 5, 3]
    assert Examples(r, 4, end=3)[0][0].tolist() == [2, 5, 6, 3] and Examples(r, 4, end=3).lengths().tolist() == [4, 3]


def test_pad_collate_masks_by_length_not_by_token_value():
    rows = [(np.array([0, 4, 5], np.uint8), 1), (np.array([7], np.uint8), 2)]  # id 0 is real here: the pad id is 9
    b = PadCollate(9)(rows)
    assert b["x"].tolist() == [[0, 4, 5], [7, 9, 9]] and b["y"].tolist() == [[1], [2]]
    assert b["mask"].tolist() == [[True, True, True], [True, False, False]] and b["x"].dtype == torch.long


class ParityOptions(TaskOptions):
    batch_size: Count = 4  # its defaults live here only: the class reads self.options


class Parity(SequenceTask):
    """A new sequence task: bit strings, one per line of `<root>/<split>.txt`, label = parity. This is all it takes."""

    Options = ParityOptions

    def __init__(self, options=None, **kw):
        super().__init__(options, **kw)
        self.max_len, self.bucket = 64, 2
        self.spec = TaskSpec(seq_len=64, vocab_size=3, pad_id=0, num_classes=2, readout="mean", truncatable=True)

    def read(self, split):
        path = self.root / f"{split}.txt"
        lines = path.read_text().split()
        return cached(path, "bits", "v1", lambda: Ragged.of([[1 + int(c) for c in s] for s in lines],
                                                            [s.count("1") % 2 for s in lines], path))


@pytest.fixture
def parity(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("val", 7), ("test", 9)):
        (tmp_path / f"{split}.txt").write_text("\n".join("".join(map(str, rng.integers(0, 2, rng.integers(3, 40)))) for _ in range(n)))
    return Parity(data={"root": str(tmp_path)})


def test_a_new_sequence_task_gets_batches_buckets_cuts_and_reports(parity):
    train = list(parity.train_dataloader())
    assert sorted(len(b["y"]) for b in train) == [2] + [4] * 7  # 30 examples, full batches first
    order = [i for batch in parity.train_dataloader().batch_sampler for i in batch]
    assert sorted(order) == list(range(30))
    for b in train:
        lengths = b["mask"].sum(1)
        assert b["x"].shape[1] == int(lengths.max())
        parities = [(row[m] - 1).sum().item() % 2 for row, m in zip(b["x"], b["mask"])]
        assert parities == b["y"][:, 0].tolist()
    assert sum(len(b["y"]) for b in parity.val_dataloader()) == 7 and sum(len(b["y"]) for b in parity.test_dataloader()) == 9
    raw = parity.raw_lengths("train")
    parity.fit_to(10)
    assert parity.spec.seq_len == 10 and max(b["x"].shape[1] for b in parity.train_dataloader()) == 10
    report = parity.truncation()
    assert report["train"]["examples_cut"] == pytest.approx(float((raw > 10).mean()), abs=1e-4)
