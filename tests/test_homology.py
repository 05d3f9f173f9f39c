"""TAPE remote homology: both on-disk formats, IUPAC ids, truncation, masks, errors, the cache, one run."""

import json
import pickle

import numpy as np
import pytest
import torch

from fpt.errors import FPTError
from fpt.tasks.homology import CLS, PAD, SEP, SPLITS, RemoteHomology, encode
from fpt.tasks.homology_fixture import write_json, write_lmdb
from tests.helpers import tiny_cfg

SMALL = dict(n_train=48, n_valid=16, n_test=16, n_folds=4, long_frac=0.1)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """A small fixture written in both formats."""
    root = tmp_path_factory.mktemp("hom")
    RemoteHomology.write_data(root, format="both", **SMALL)
    return root


def _task(root, **kw) -> RemoteHomology:
    t = RemoteHomology(data={"root": str(root)}, **kw)
    t.check()
    return t


def _records(root, split):
    return json.loads((root / "remote_homology" / f"remote_homology_{split}.json").read_text())


def test_fixture_writes_every_split_in_both_formats(both):
    for split in SPLITS:
        assert (both / "remote_homology" / f"remote_homology_{split}.json").is_file()
        assert (both / "remote_homology" / f"remote_homology_{split}.lmdb" / "data.mdb").is_file()
    train = _records(both, "train")
    assert len(train) == 48 and {r["fold_label"] for r in train} == {0, 1, 2, 3}
    assert any(len(r["primary"]) > 1024 for r in train)  # exercises truncation
    assert all(r["protein_length"] == len(r["primary"]) for r in train)


def test_json_and_lmdb_give_identical_tokens_and_labels(both):
    j, m = _task(both, format="json"), _task(both, format="lmdb")
    for split in SPLITS:
        a, b = j.split(split), m.split(split)
        assert a.source.suffix == ".json" and b.source.suffix == ".lmdb"
        assert np.array_equal(a.tokens, b.tokens) and np.array_equal(a.offsets, b.offsets)
        assert np.array_equal(a.labels, b.labels)
    assert j.split("train").labels.tolist() == [r["fold_label"] for r in _records(both, "train")]


def test_iupac_ids_by_hand():
    # 0 pad 1 mask 2 cls 3 sep 4 unk, then A=5 B=6 C=7 D=8 ... W=26 X=27 Y=28 Z=29
    assert encode("ACDX") == [2, 5, 7, 8, 27, 3]
    assert encode("KWYZ") == [2, 14, 26, 28, 29, 3]
    assert encode("aJ*") == [2, 5, 4, 4, 3]  # lower case is the same residue; J and * are <unk>


def test_tokens_are_cls_residues_sep_of_each_record(both):
    t = _task(both, format="json")
    tok = t.split("valid")
    for i, r in enumerate(_records(both, "valid")):
        assert tok.tokens[tok.offsets[i] : tok.offsets[i + 1]].tolist() == encode(r["primary"])


def test_long_sequences_are_truncated_never_dropped(both):
    t = _task(both, format="json")
    t.fit_to(64)  # what a 64-position trunk asks for
    assert t.spec.seq_len == 64 and t.max_len == 64
    records = _records(both, "train")
    seen = []
    for batch in t.train_dataloader():
        assert batch["x"].shape[1] <= 64
        seen += [(tuple(row[m].tolist()), y.item()) for row, m, y in zip(batch["x"], batch["mask"], batch["y"][:, 0])]
    full = [encode(r["primary"]) for r in records]
    expected = [(tuple(ids if len(ids) <= 64 else ids[:63] + [SEP]), r["fold_label"]) for ids, r in zip(full, records)]
    assert len(seen) == len(records) == 48
    assert sorted(seen) == sorted(expected)  # every record once, with its label, cut to cls + 62 residues + sep
    assert sum(len(ids) > 64 for ids in full) >= 5


def test_eval_loaders_cover_every_record_and_the_holdouts(both):
    t = _task(both, format="json", eval_batch_size=5)
    n = sum(len(b["y"]) for b in t.test_dataloader())
    assert n == len(_records(both, "test_fold_holdout"))
    extra = t.extra_test_dataloaders()
    assert set(extra) == {"test_superfamily", "test_family"}
    labels = torch.cat([b["y"][:, 0] for b in extra["test_family"]]).sort().values
    assert labels.tolist() == sorted(r["fold_label"] for r in _records(both, "test_family_holdout"))
    assert sum(len(b["y"]) for b in _task(both, val_size=7).val_dataloader()) == 7


def test_batches_are_right_padded_with_a_matching_mask(both):
    t = _task(both, format="json", batch_size=8, bucket=1)  # plain shuffled batches: mixed lengths
    batch = next(iter(t.train_dataloader()))
    x, mask, y = batch["x"], batch["mask"], batch["y"]
    assert x.dtype == torch.long and mask.dtype == torch.bool and y.shape == (8, 1)
    lengths = mask.sum(1)
    assert x.shape[1] == lengths.max() and lengths.min() < lengths.max()  # padded to its own longest
    assert torch.equal(mask, x != PAD)  # pad id 0 never occurs in a real sequence
    assert (x[:, 0] == CLS).all() and (x[torch.arange(8), lengths - 1] == SEP).all()
    assert torch.equal(mask, torch.arange(x.shape[1])[None] < lengths[:, None])  # right padding


def test_length_buckets_cover_every_example_once_and_cut_padding(both):
    def padded(bucket):
        t = _task(both, format="json", batch_size=4, bucket=bucket)
        batches = list(t.train_dataloader())
        n = sum(len(b["y"]) for b in batches)
        return n, sum(b["mask"].numel() - b["mask"].sum().item() for b in batches)

    (n_plain, pad_plain), (n_bucket, pad_bucket) = padded(1), padded(50)
    assert n_plain == n_bucket == 48
    assert pad_bucket < pad_plain / 3


def test_missing_files_are_one_line_naming_files_place_and_fix(tmp_path):
    RemoteHomology.write_data(tmp_path, format="json", **SMALL)
    (tmp_path / "remote_homology" / "remote_homology_valid.json").unlink()
    with pytest.raises(FPTError) as e:
        RemoteHomology(data={"root": str(tmp_path)}).check()
    msg = str(e.value)
    assert "\n" not in msg and "remote_homology_valid.{json,lmdb}" in msg and "train" not in msg.split("(")[0]
    assert str(tmp_path / "remote_homology") in msg and "data_pytorch/remote_homology.tar.gz" in msg
    assert "fpt data remote_homology out=" in msg
    with pytest.raises(FPTError, match=r"all five splits, remote_homology_\{train,valid,.*\}\.lmdb \(looked"):
        RemoteHomology(format="lmdb", data={"root": str(tmp_path)}).check()  # JSON present, LMDB asked for


@pytest.mark.parametrize("field", ["fold_label", "primary"])
@pytest.mark.parametrize("fmt", ["json", "lmdb"])
def test_record_without_a_field_is_one_line_naming_file_and_index(tmp_path, field, fmt):
    RemoteHomology.write_data(tmp_path, format=fmt, **SMALL)
    records = _fixture_records(SMALL["n_valid"])
    del records[5][field]
    path = tmp_path / "remote_homology" / f"remote_homology_valid.{fmt}"
    (write_json if fmt == "json" else write_lmdb)(path, records)
    with pytest.raises(FPTError) as e:
        _task(tmp_path, format=fmt)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and "record 5 " in msg and f"'{field}'" in msg


def _fixture_records(n):
    return [{"primary": "ACDEFGHIK", "protein_length": 9, "fold_label": i % 3} for i in range(n)]


def test_label_beyond_num_classes_is_an_error(both):
    with pytest.raises(FPTError, match=r"record \d+ has fold_label 3, outside 0\.\.2; set task.num_classes"):
        _task(both, num_classes=3)


def test_lmdb_reads_numpy_fields_but_refuses_code(tmp_path):
    import lmdb

    RemoteHomology.write_data(tmp_path, format="lmdb", **SMALL)
    path = tmp_path / "remote_homology" / "remote_homology_valid.lmdb"
    records = _fixture_records(SMALL["n_valid"])
    records[0].update(evolutionary=np.ones((9, 30), np.float32), protein_length=np.int64(9), fold_label=np.int64(2))
    write_lmdb(path, records)
    assert _task(tmp_path).split("valid").labels[:3].tolist() == [2, 1, 2]

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    env = lmdb.open(str(path))
    with env.begin(write=True) as txn:
        txn.put(b"3", pickle.dumps({"primary": "AC", "fold_label": 0, "x": Evil()}))
    env.close()
    with pytest.raises(FPTError, match=r"record 3: refusing to unpickle builtins\.print"):
        _task(tmp_path)


def test_cache_is_reused_and_invalidated_when_the_file_changes(tmp_path, monkeypatch):
    import fpt.tasks.homology as hom

    RemoteHomology.write_data(tmp_path, format="json", **SMALL)
    _task(tmp_path)
    cache = tmp_path / "remote_homology" / ".cache"
    first = sorted(p.name for p in cache.glob("remote_homology_valid.json.*.npz"))
    assert len(first) == 1 and len(list(cache.glob("*.npz"))) == 5

    def no_reading(path):
        raise AssertionError(f"re-read {path}")

    monkeypatch.setattr(hom, "read_records", no_reading)
    assert _task(tmp_path).split("valid").labels.tolist() == [r["fold_label"] for r in _records(tmp_path, "valid")]
    monkeypatch.undo()

    write_json(tmp_path / "remote_homology" / "remote_homology_valid.json", _fixture_records(5))
    t = _task(tmp_path)
    assert t.split("valid").labels.tolist() == [0, 1, 2, 0, 1] and len(t.split("valid")) == 5
    now = sorted(p.name for p in cache.glob("remote_homology_valid.json.*.npz"))
    assert len(now) == 1 and now != first  # the stale cache is gone


def test_options_are_checked():
    """By the task's schemas: task_options where the config is composed and the class built; and for fpt data."""
    from fpt.config.schema import check
    from fpt.config.sections import check_data_options

    with pytest.raises(FPTError, match="task.format must be auto, json or lmdb"):
        check(RemoteHomology.Options, {"format": "csv"}, "task")
    with pytest.raises(FPTError, match="task.readout must be last or mean"):
        check(RemoteHomology.Options, {"readout": "last_k"}, "task")
    with pytest.raises(FPTError, match="task.val_size must be a positive integer or null"):
        check(RemoteHomology.Options, {"val_size": 0}, "task")
    with pytest.raises(FPTError, match="unknown option 'n_trian'"):
        check_data_options(RemoteHomology, {"n_trian": 3}, "remote_homology")
    spec = RemoteHomology().spec
    assert (spec.vocab_size, spec.pad_id, spec.num_classes, spec.seq_len, spec.readout, spec.truncatable) == (30, 0, 1195, 1024, "mean", True)


@pytest.mark.slow
def test_trains_end_to_end_on_a_tiny_bert(tiny, both, tmp_path):
    from fpt.run.train import train

    cfg = tiny_cfg(tiny, "bert", "task=remote_homology", f"data.root={both}", "trainer.max_steps=4",
                   "trainer.val_check_interval=2", "task.num_classes=4", "task.batch_size=8")
    res = train(cfg, tmp_path)
    assert res["status"] == "ok" and res["steps"] == 4 and res["task"] == "remote_homology"
    assert 0.0 <= res["test/acc"] <= 1.0 and res["val/acc"] is not None
    assert (tmp_path / "checkpoints" / "best.ckpt").is_file()
