"""TAPE remote homology (Rao et al. 2019): a protein's amino-acid sequence -> its SCOP fold (1195 classes).

Files: `remote_homology_{split}.lmdb` (TAPE's LMDB: pickled dict records under b"0", b"1", ... and
b"num_examples") or `remote_homology_{split}.json` (a JSON list of the same records), in
`<data.root>/remote_homology/` or `<data.root>`. Each split is tokenized once, untruncated, into a
`.cache/` beside its file, keyed by a hash of the file's bytes; truncation to `max_len` happens per batch.
Validation is `valid`; the test set is `test_fold_holdout` (the headline); the superfamily and
family holdouts come from `extra_test_dataloaders()`.

Unlike the 2021 code, no sequence and no batch is ever dropped: a long one keeps <cls>, its first
residues and <sep>. Batches are right-padded to their own longest sequence, pads masked out.

Readout: `mean` (over real tokens) by default, because a fold is a property of the whole chain and
TAPE itself advises mean-pooling a transformer's outputs for sequence-level tasks; `last` (the last
real token, <sep>) is the paper's choice, kept as a switch. On the fixture neither wins measurably.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from fpt.errors import FPTError
from fpt.schema import Count, CountOrNull, NonNegative, Options, SequenceReadout, choice, rule
from tasks.base import Task, TaskOptions, TaskSpec
from tasks.loading import SafeUnpickler, loader
from tasks.sampling import bucketed_batches, epoch_batches

# TAPE's IUPAC vocabulary (tape.tokenizers.IUPAC_VOCAB): ids are fixed, never derived from the data.
IUPAC_VOCAB = ("<pad>", "<mask>", "<cls>", "<sep>", "<unk>", *"ABCDEFGHIKLMNOPQRSTUVWXYZ")
PAD, MASK, CLS, SEP, UNK = range(5)
NUM_FOLDS = 1195
SPLITS = ("train", "valid", "test_fold_holdout", "test_superfamily_holdout", "test_family_holdout")
EXTRA_TESTS = {"test_superfamily": "test_superfamily_holdout", "test_family": "test_family_holdout"}
FORMATS = ("auto", "json", "lmdb")
LMDB_URL = "http://s3.amazonaws.com/songlabdata/proteindata/data_pytorch/remote_homology.tar.gz"
JSON_URL = "http://s3.amazonaws.com/songlabdata/proteindata/data_raw_pytorch/remote_homology.tar.gz"
CACHE_VERSION = "1"  # bump when the cached arrays change meaning

_LUT = np.full(256, UNK, dtype=np.uint8)  # byte -> id; anything outside the vocabulary is <unk>
for _i, _tok in enumerate(IUPAC_VOCAB[5:], start=5):
    _LUT[ord(_tok)] = _LUT[ord(_tok.lower())] = _i


def encode(seq: str) -> list[int]:
    """One sequence as TAPE ids: <cls> residues <sep>."""
    return [CLS, *_LUT[np.frombuffer(seq.encode("ascii", "replace"), np.uint8)].tolist(), SEP]


# --- finding and reading the files ----------------------------------------------------------------
def search_dirs(root: Path) -> list[Path]:
    """Where the split files may be: TAPE's tarball unpacks into remote_homology/."""
    return [root / "remote_homology", root]


def find_split(root: Path, split: str, fmt: str = "auto") -> Path | None:
    """The JSON file or LMDB directory of `split` (auto: JSON first, it needs no extra package)."""
    kinds = ("json", "lmdb") if fmt == "auto" else (fmt,)
    for d in search_dirs(root):
        for kind in kinds:
            p = d / f"remote_homology_{split}.{kind}"
            if p.is_file() if kind == "json" else (p / "data.mdb").is_file():
                return p
    return None


def read_records(path: Path) -> list[dict]:
    """The records of one split file, JSON or LMDB."""
    return _read_json(path) if path.suffix == ".json" else _read_lmdb(path)


def _read_json(path: Path) -> list[dict]:
    try:
        records = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise FPTError(f"cannot read {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(records, list):
        raise FPTError(f"{path} is not a JSON list of records; expected TAPE's remote_homology_<split>.json")
    return records


def _read_lmdb(path: Path) -> list[dict]:
    try:
        import lmdb
    except ImportError:
        raise FPTError(f"reading {path} needs the lmdb package: pip install lmdb (or use the JSON files, task.format=json)") from None
    try:
        env = lmdb.open(str(path), readonly=True, lock=False, readahead=False, meminit=False, max_readers=1)
    except lmdb.Error as e:
        raise FPTError(f"cannot open {path} as an LMDB directory: {e}") from None
    try:
        with env.begin() as txn:  # the way TAPE's LMDBDataset reads: key str(i), value a pickled dict
            n = txn.get(b"num_examples")
            if n is None:
                raise FPTError(f"{path} has no b'num_examples' key; is it a TAPE LMDB directory?")
            n = int(_unpickle(n, path, "num_examples"))
            return [_unpickle(txn.get(str(i).encode()), path, i) for i in range(n)]
    finally:
        env.close()


def _unpickle(raw: bytes | None, path: Path, key) -> object:
    import io

    if raw is None:
        raise FPTError(f"{path} has no record {key} (num_examples says it should); the LMDB is incomplete")
    try:
        return SafeUnpickler(io.BytesIO(raw)).load()
    except Exception as e:  # corrupt bytes or a forbidden global: either way the record is unusable
        raise FPTError(f"{path} record {key}: {e}; fpt reads plain records and numpy arrays only (or use task.format=json)") from None


# --- tokenizing once, caching ---------------------------------------------------------------------
@dataclass(frozen=True)
class Tokenized:
    """One split: every sequence's ids back to back (<cls> ... <sep>), where each starts, its label."""

    tokens: np.ndarray  # (sum of lengths,) uint8
    offsets: np.ndarray  # (n + 1,) int64: sequence i is tokens[offsets[i]:offsets[i + 1]]
    labels: np.ndarray  # (n,) int64 fold labels
    source: Path

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per sequence, <cls> and <sep> included, before any truncation."""
        return np.diff(self.offsets)


def tokenize(records: list, path: Path) -> Tokenized:
    """Validate and encode every record of `path` (vectorised: one lookup over all residues)."""
    for i, r in enumerate(records):
        _check_record(r, path, i)
    seqs = [r["primary"] for r in records]
    labels = [int(r["fold_label"]) for r in records]
    ids = _LUT[np.frombuffer("".join(seqs).encode("ascii", "replace"), np.uint8)]  # one byte per character
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) + 2 for s in seqs])
    tokens = np.empty(offsets[-1], dtype=np.uint8)
    is_residue = np.ones(offsets[-1], dtype=bool)
    is_residue[offsets[:-1]] = is_residue[offsets[1:] - 1] = False
    tokens[offsets[:-1]], tokens[offsets[1:] - 1], tokens[is_residue] = CLS, SEP, ids
    return Tokenized(tokens, offsets, np.asarray(labels, dtype=np.int64), path)


def _check_record(r, path: Path, i: int) -> None:
    """A record needs a string `primary` and an int `fold_label`."""
    if not isinstance(r, dict):
        raise FPTError(f"{path} record {i} is a {type(r).__name__}, not a dict with 'primary' and 'fold_label'")
    for field, kind, what in (("primary", str, "a string"), ("fold_label", (int, np.integer), "an int")):
        if field not in r:
            raise FPTError(f"{path} record {i} has no '{field}'; remote homology records need 'primary' and 'fold_label'")
        if not isinstance(r[field], kind) or isinstance(r[field], bool):
            raise FPTError(f"{path} record {i}: '{field}' is {type(r[field]).__name__}, expected {what}")


def content_hash(path: Path) -> str:
    """Hash of the file's bytes (an LMDB directory: its data.mdb) and of the tokenizer settings."""
    h = hashlib.blake2b(f"{CACHE_VERSION}|{','.join(IUPAC_VOCAB)}|".encode(), digest_size=12)
    with open(path / "data.mdb" if path.is_dir() else path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def cache_file(path: Path, key: str) -> Path:
    """Where the tokenized split of `path` is kept: <its folder>/.cache/<name>.<key>.npz."""
    return path.parent / ".cache" / f"{path.name}.{key}.npz"


def load_split(path: Path) -> Tokenized:
    """The tokenized split: from the cache when the file is unchanged, else read, tokenized and cached."""
    cached = cache_file(path, content_hash(path))
    if cached.is_file():
        try:
            with np.load(cached) as z:
                return Tokenized(z["tokens"], z["offsets"], z["labels"], path)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is rebuilt below
    tok = tokenize(read_records(path), path)
    _save(cached, tok)
    return tok


def _save(cached: Path, tok: Tokenized) -> None:
    """Write atomically (concurrent runs may share a data dir) and drop caches of older file contents."""
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, tokens=tok.tokens, offsets=tok.offsets, labels=tok.labels)
        os.replace(tmp, cached)
        for old in cached.parent.glob(f"{tok.source.name}.*.npz"):
            if old != cached:
                old.unlink(missing_ok=True)
    except OSError as e:  # a read-only data dir still trains, it just tokenizes every run
        print(f"note: cannot cache the tokenized {tok.source.name} in {cached.parent}: {e.strerror}", file=sys.stderr)


# --- batches --------------------------------------------------------------------------------------
class Sequences(Dataset):
    """(ids, label) pairs, each cut to `max_len` tokens as <cls> + first residues + <sep>."""

    def __init__(self, tok: Tokenized, max_len: int, limit: int | None = None):
        self.tok, self.max_len = tok, max_len
        self.n = len(tok) if limit is None else min(len(tok), limit)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        s, e = self.tok.offsets[i], self.tok.offsets[i + 1]
        ids = self.tok.tokens[s:e]
        if len(ids) > self.max_len:
            ids = np.append(ids[: self.max_len - 1], SEP)
        return ids, int(self.tok.labels[i])

    def lengths(self) -> np.ndarray:
        """Tokens per example after truncation."""
        return np.minimum(self.tok.lengths[: self.n], self.max_len)


def collate(rows: list[tuple[np.ndarray, int]]) -> dict[str, torch.Tensor]:
    """Right-pad to the batch's longest sequence; mask is False on pads."""
    longest = max(len(ids) for ids, _ in rows)
    x = torch.full((len(rows), longest), PAD, dtype=torch.long)  # (B, T)
    for b, (ids, _) in enumerate(rows):
        x[b, : len(ids)] = torch.from_numpy(ids.astype(np.int64))
    mask = torch.arange(longest)[None, :] < torch.tensor([len(ids) for ids, _ in rows])[:, None]  # (B, T)
    y = torch.tensor([label for _, label in rows], dtype=torch.long)[:, None]  # (B, 1)
    return {"x": x, "mask": mask, "y": y}


# --- the task -------------------------------------------------------------------------------------
class HomologyOptions(TaskOptions):
    eval_batch_size: Count = 32
    max_len: rule(int, lambda v: v >= 3, "an integer >= 3 (<cls>, a residue, <sep>)") = 1024
    num_classes: rule(int, lambda v: v >= 2, "an integer >= 2") = NUM_FOLDS
    format: choice(*FORMATS) = "auto"
    readout: SequenceReadout = "mean"  # one fold per sequence
    bucket: Count = 50
    val_size: CountOrNull = None  # null: all
    test_size: CountOrNull = None


class HomologyFixtureOptions(Options):
    """`fpt data remote_homology out=DIR key=value`."""

    format: choice("both", "json", "lmdb") = "both"
    n_train: Count = 480
    n_valid: Count = 96
    n_test: Count = 96
    n_folds: rule(int, lambda v: 1 <= v <= NUM_FOLDS, f"an integer in 1..{NUM_FOLDS}") = 8
    long_frac: rule(float, lambda v: 0 <= v <= 1, "in [0, 1]") = 0.03
    seed: NonNegative = 0


class RemoteHomology(Task):
    """TAPE remote homology: IUPAC tokens (30 ids) -> one of 1195 folds; test on the fold holdout."""

    Options = HomologyOptions
    DataOptions = HomologyFixtureOptions

    def __init__(self, batch_size: int = 16, eval_batch_size: int = 32, max_len: int = 1024, num_classes: int = NUM_FOLDS,
                 format: str = "auto", readout: str = "mean", bucket: int = 50, val_size: int | None = None,
                 test_size: int | None = None, seed: int = 0, data=None):
        super().__init__(batch_size, seed, data)
        self.fmt, self.max_len, self.bucket = format, int(max_len), int(bucket)
        self.eval_batch_size = int(eval_batch_size)
        self.val_size, self.test_size = val_size, test_size
        self.spec = TaskSpec(seq_len=self.max_len, num_classes=int(num_classes), readout=readout,
                             vocab_size=len(IUPAC_VOCAB), pad_id=PAD, truncatable=True)
        self._splits: dict[str, Tokenized] | None = None

    # -- data on disk --
    def paths(self) -> dict[str, Path | None]:
        """Each split's file (None when missing)."""
        return {s: find_split(self.root, s, self.fmt) for s in SPLITS}

    def data_files(self) -> list[Path]:
        return [p for p in self.paths().values() if p is not None]

    def check(self) -> None:
        """One-line FPTError if a split is missing, a record lacks a field, or a label exceeds num_classes."""
        paths = self.paths()
        missing = [s for s, p in paths.items() if p is None]
        if missing:
            raise FPTError(self._missing_message(missing))
        splits = {s: load_split(p) for s, p in paths.items()}
        for tok in splits.values():
            bad = np.flatnonzero((tok.labels < 0) | (tok.labels >= self.spec.num_classes))
            if len(bad):
                i = int(bad[0])
                raise FPTError(f"{tok.source} record {i} has fold_label {tok.labels[i]}, outside 0..{self.spec.num_classes - 1}; "
                               f"set task.num_classes above the largest label")
        self._splits = splits

    def _missing_message(self, missing: list[str]) -> str:
        kinds = "{json,lmdb}" if self.fmt == "auto" else self.fmt
        names = ", ".join(f"remote_homology_{s}.{kinds}" for s in missing)
        if len(missing) == len(SPLITS):
            names = f"all five splits, remote_homology_{{{','.join(SPLITS)}}}.{kinds}"
        where = " and ".join(str(d) for d in search_dirs(self.root))
        urls = {"lmdb": f"{LMDB_URL} (LMDB)", "json": f"{JSON_URL} (JSON)"}
        get = " or ".join(v for k, v in urls.items() if self.fmt in ("auto", k))
        return (f"remote homology data missing: {names} (looked in {where}); download {get} and unpack it into {self.root}, "
                f"or write a small fixture: fpt data remote_homology out={self.root}")

    def split(self, name: str) -> Tokenized:
        """A tokenized split (loads and checks all splits on first use)."""
        if self._splits is None:
            self.check()
        return self._splits[name]

    def fit_to(self, seq_len: int) -> None:
        """Cut sequences to `seq_len` tokens (<cls> + first residues + <sep>); none is dropped."""
        if seq_len < 3:
            raise FPTError(f"cannot cut proteins to {seq_len} tokens: <cls>, a residue and <sep> need 3")
        self.max_len = min(self.max_len, int(seq_len))
        self.spec = replace(self.spec, seq_len=self.max_len)

    def raw_lengths(self, split: str) -> np.ndarray:
        """Tokens per protein (<cls> and <sep> included) before the cut to max_len."""
        name = {"train": "train", "val": "valid", "test": "test_fold_holdout"}[split]
        limit = {"val": self.val_size, "test": self.test_size}.get(split)
        return self.split(name).lengths[:limit]

    # -- loaders --

    def train_dataloader(self) -> DataLoader:
        """Shuffled batches of similar length (pools of task.bucket batches), a function of (seed, epoch): resumable."""
        ds = Sequences(self.split("train"), self.max_len)
        if self.trainer is not None and self.trainer.world_size > 1:  # Lightning shards a plain sampler over the ranks
            return loader(ds, self.data, batch_size=self.batch_size, shuffle=True, collate_fn=collate,
                          generator=torch.Generator().manual_seed(self.seed))
        lengths = ds.lengths()
        order = epoch_batches(self.trainer, lambda epoch: bucketed_batches(lengths, self.batch_size, self.seed, epoch, self.bucket))
        return loader(ds, self.data, batch_sampler=order, collate_fn=collate)

    def _eval_loader(self, split: str, limit: int | None) -> DataLoader:
        ds = Sequences(self.split(split), self.max_len, limit)
        order = np.argsort(ds.lengths(), kind="stable").tolist()  # similar lengths together: less padding
        return loader(ds, self.data, batch_size=self.eval_batch_size, sampler=order, collate_fn=collate)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("valid", self.val_size)

    def test_dataloader(self) -> DataLoader:
        """The fold holdout: the headline number."""
        return self._eval_loader("test_fold_holdout", self.test_size)

    def extra_test_dataloaders(self) -> dict[str, DataLoader]:
        """The superfamily and family holdouts, by the name their metrics get (test_superfamily/acc, ...)."""
        return {name: self._eval_loader(split, self.test_size) for name, split in EXTRA_TESTS.items()}

    # -- fixture --
    @classmethod
    def write_data(cls, out: Path, format: str = "both", n_train: int = 480, n_valid: int = 96, n_test: int = 96,
                   n_folds: int = 8, long_frac: float = 0.03, seed: int = 0) -> list[Path]:
        """A small learnable fixture in TAPE's formats (json, lmdb or both) for all five splits (HomologyFixtureOptions)."""
        sizes = {"train": n_train, "valid": n_valid, **{s: n_test for s in SPLITS[2:]}}
        folder = Path(out).expanduser() / "remote_homology"
        folder.mkdir(parents=True, exist_ok=True)
        motifs = _motifs(int(n_folds), int(seed))
        written = []
        for k, split in enumerate(SPLITS):
            records = fixture_records(int(sizes[split]), motifs, float(long_frac), np.random.default_rng([int(seed), k]), split)
            if format in ("json", "both"):
                written.append(write_json(folder / f"remote_homology_{split}.json", records))
            if format in ("lmdb", "both"):
                written.append(write_lmdb(folder / f"remote_homology_{split}.lmdb", records))
        return written


# --- the fixture: `fpt data remote_homology out=DIR` ----------------------------------------------
RESIDUES = np.array(list("ACDEFGHIKLMNPQRSTVWY"))  # the 20 standard amino acids
MOTIF_LEN, MOTIF_EVERY = 8, 50  # a fold's motif recurs every ~50 residues, so a cut sequence keeps it


def _motifs(n_folds: int, seed: int) -> list[str]:
    """One random 8-residue motif per fold, shared by all splits."""
    rng = np.random.default_rng([seed, 999])
    return ["".join(rng.choice(RESIDUES, MOTIF_LEN)) for _ in range(n_folds)]


def fixture_records(n: int, motifs: list[str], long_frac: float, rng: np.random.Generator, split: str) -> list[dict]:
    """`n` TAPE-like records: random residues (a few X) with the fold's motif embedded; some over 1024 long."""
    labels = rng.permutation(np.arange(n) % len(motifs))  # balanced folds
    long = np.zeros(n, dtype=bool)
    long[rng.choice(n, min(n, max(1, round(long_frac * n))), replace=False)] = n > 0
    records = []
    for i in range(n):
        length = int(rng.integers(1025, 1400) if long[i] else rng.integers(40, 400))
        seq = rng.choice(RESIDUES, length)
        seq[rng.random(length) < 0.01] = "X"  # unresolved residues, as in real PDB-derived data
        motif = np.array(list(motifs[labels[i]]))
        for start in range(int(rng.integers(0, 20)), length - MOTIF_LEN, MOTIF_EVERY):
            seq[start : start + MOTIF_LEN] = motif
        primary = "".join(seq)
        records.append({"id": f"{split}_{i}", "primary": primary, "protein_length": length, "fold_label": int(labels[i])})
    return records


def write_json(path: Path, records: list[dict]) -> Path:
    """TAPE's JSON format: one list of records."""
    path.write_text(json.dumps(records))
    return path


def write_lmdb(path: Path, records: list[dict]) -> Path:
    """TAPE's LMDB format: pickled records under b"0", b"1", ... and b"num_examples"."""
    try:
        import lmdb
    except ImportError:
        raise FPTError("writing LMDB needs the lmdb package: pip install lmdb (or format=json)") from None
    blobs = [pickle.dumps(r) for r in records]
    env = lmdb.open(str(path), map_size=max(1 << 20, 4 * sum(map(len, blobs))), subdir=True)
    with env.begin(write=True) as txn:
        txn.drop(env.open_db(), delete=False)  # rewriting a fixture leaves no records of the old one
        for i, blob in enumerate(blobs):
            txn.put(str(i).encode(), blob)
        txn.put(b"num_examples", pickle.dumps(len(records)))
    env.close()
    return path
