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

import json
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

from fpt.errors import FPTError
from fpt.config.schema import Count, CountOrNull, NonNegative, Options, SequenceReadout, choice, rule
from fpt.tasks.base import TaskOptions, TaskSpec
from fpt.tasks.loading import SafeUnpickler
from fpt.tasks.sequences import Ragged, SequenceTask, cached

# TAPE's IUPAC vocabulary (tape.tokenizers.IUPAC_VOCAB): ids are fixed, never derived from the data.
IUPAC_VOCAB = ("<pad>", "<mask>", "<cls>", "<sep>", "<unk>", *"ABCDEFGHIKLMNOPQRSTUVWXYZ")
PAD, MASK, CLS, SEP, UNK = range(5)
NUM_FOLDS = 1195
SPLITS = ("train", "valid", "test_fold_holdout", "test_superfamily_holdout", "test_family_holdout")
EXTRA_TESTS = {"test_superfamily": "test_superfamily_holdout", "test_family": "test_family_holdout"}
TAPE_NAMES = {"train": "train", "val": "valid", "test": "test_fold_holdout", **EXTRA_TESTS}  # the toolkit's split -> TAPE's
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
def tokenize(records: list, path: Path) -> Ragged:
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
    return Ragged(tokens, offsets, np.asarray(labels, dtype=np.int64), path)


def _check_record(r, path: Path, i: int) -> None:
    """A record needs a string `primary` and an int `fold_label`."""
    if not isinstance(r, dict):
        raise FPTError(f"{path} record {i} is a {type(r).__name__}, not a dict with 'primary' and 'fold_label'")
    for field, kind, what in (("primary", str, "a string"), ("fold_label", (int, np.integer), "an int")):
        if field not in r:
            raise FPTError(f"{path} record {i} has no '{field}'; remote homology records need 'primary' and 'fold_label'")
        if not isinstance(r[field], kind) or isinstance(r[field], bool):
            raise FPTError(f"{path} record {i}: '{field}' is {type(r[field]).__name__}, expected {what}")


def load_split(path: Path) -> Ragged:
    """The tokenized split: from `<its folder>/.cache/` when the file (an LMDB: its data.mdb) is unchanged, else
    read, tokenized and cached (tasks/sequences.py)."""
    return cached(path, "tape", f"{CACHE_VERSION}|{','.join(IUPAC_VOCAB)}", lambda: tokenize(read_records(path), path))


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


class RemoteHomology(SequenceTask):
    """TAPE remote homology: IUPAC tokens (30 ids) -> one of 1195 folds; test on the fold holdout."""

    Options = HomologyOptions
    DataOptions = HomologyFixtureOptions
    options: HomologyOptions
    end_id, min_len = SEP, 3  # a cut keeps <cls> ... <sep>

    def __init__(self, options: HomologyOptions | None = None, **kw):
        super().__init__(options, **kw)
        o = self.options
        self.max_len = o.max_len  # fit_to may cut it further
        self.spec = TaskSpec(seq_len=self.max_len, num_classes=o.num_classes, readout=o.readout,
                             vocab_size=len(IUPAC_VOCAB), pad_id=PAD, truncatable=True)
        self._splits: dict[str, Ragged] | None = None

    @property
    def bucket(self) -> int:
        return self.options.bucket

    @property
    def eval_batch_size(self) -> int:
        return self.options.eval_batch_size

    # -- data on disk --
    def paths(self) -> dict[str, Path | None]:
        """Each split's file (None when missing)."""
        return {s: find_split(self.root, s, self.options.format) for s in SPLITS}

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
        fmt = self.options.format
        kinds = "{json,lmdb}" if fmt == "auto" else fmt
        names = ", ".join(f"remote_homology_{s}.{kinds}" for s in missing)
        if len(missing) == len(SPLITS):
            names = f"all five splits, remote_homology_{{{','.join(SPLITS)}}}.{kinds}"
        where = " and ".join(str(d) for d in search_dirs(self.root))
        urls = {"lmdb": f"{LMDB_URL} (LMDB)", "json": f"{JSON_URL} (JSON)"}
        get = " or ".join(v for k, v in urls.items() if fmt in ("auto", k))
        return (f"remote homology data missing: {names} (looked in {where}); download {get} and unpack it into {self.root}, "
                f"or write a small fixture: fpt data remote_homology out={self.root}")

    def split(self, name: str) -> Ragged:
        """A whole split by TAPE's name (loads and checks all splits on first use)."""
        if self._splits is None:
            self.check()
        return self._splits[name]

    def read(self, split: str) -> Ragged:
        """train, val (TAPE's valid), test (the fold holdout: the headline) or an extra test; val_size/test_size
        keep the first examples."""
        data = self.split(TAPE_NAMES[split])
        limit = None if split == "train" else self.options.val_size if split == "val" else self.options.test_size
        return data if limit is None or limit >= len(data) else data.subset(np.arange(limit))

    def extra_test_dataloaders(self) -> dict[str, DataLoader]:
        """The superfamily and family holdouts, by the name their metrics get (test_superfamily/acc, ...)."""
        return {name: self.eval_dataloader(name) for name in EXTRA_TESTS}

    # -- fixture --
    @classmethod
    def write_data(cls, out: Path, **options) -> list[Path]:
        """A small learnable fixture in TAPE's formats for all five splits (tasks/homology_fixture.py, HomologyFixtureOptions)."""
        from fpt.tasks.homology_fixture import write_fixture

        return write_fixture(Path(out), SPLITS, **options)
