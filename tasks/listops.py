"""ListOps (LRA): nested MIN / MAX / MED / SM expressions over digits; predict the value (10 classes).

Reads LRA's `basic_{train,val,test}.tsv` (header `Source\\tTarget`) from `<data.root>/listops/` or
`<data.root>/`. Tokenization keeps the operators, the digits and the closing `]`, and drops only the
`(` `)` wrappers; ids come from the fixed table `TOKENS`, never from hash order. `paper_compat: true`
reproduces the 2021 code instead: every bracket dropped (so `]` too) and at most 512 tokens.
Each split is tokenized once into `<data dir>/.cache/` (safe to delete), keyed by the file's bytes
and the tokenizer settings. Too-long sequences keep their FIRST tokens: the outermost operator
opens the expression, and a prefix is a well-formed start of the same computation.

Also LRA's generator (`generate`, `evaluate`, `lra_string`) and `ListOps.write_data` behind
`fpt data listops out=DIR`.

Axes: b batch, t tokens.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from pydantic import model_validator

from fpt.errors import FPTError
from fpt.schema import Count, CountOrNull, Flag, Invalid, NonNegative, Options, SequenceReadout, rule
from tasks.base import Task, TaskOptions, TaskSpec
from tasks.loading import loader
from tasks.sampling import bucketed_batches, epoch_batches

# --- vocabulary and tokenizer ---------------------------------------------------------------
OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
CLOSE = "]"
PAD_ID, UNK_ID = 0, 1
# Fixed ids: pad, unknown, then the 15 real tokens. The same in every process and run.
TOKENS = ("<pad>", "<unk>", *OPERATORS, CLOSE, *(str(d) for d in range(10)))
TOKEN_IDS = {t: i for i, t in enumerate(TOKENS)}
TOKENIZER_VERSION = 1  # bump when tokenization changes: invalidates every cache
PAPER_MAX_LEN = 512
SPLITS = {"train": "basic_train.tsv", "val": "basic_val.tsv", "test": "basic_test.tsv"}
HEADER = "Source\tTarget"
LRA_URL = "https://storage.googleapis.com/long-range-arena/lra_release.gz"


def dropped_tokens(paper_compat: bool) -> frozenset[str]:
    """Whitespace tokens left out: the meaningless `(` `)`, plus `]` in the 2021 setting."""
    return frozenset({"(", ")", CLOSE} if paper_compat else {"(", ")"})


def tokenize(source: str, drop: frozenset[str] = dropped_tokens(False)) -> list[int]:
    """One LRA `Source` string -> token ids (unknown tokens map to UNK_ID)."""
    get = TOKEN_IDS.get
    return [get(t, UNK_ID) for t in source.split() if t not in drop]


def detokenize(ids) -> str:
    """Token ids -> space-separated tokens (pads left out)."""
    return " ".join(TOKENS[int(i)] for i in ids if int(i) != PAD_ID)


# --- the split files and their token cache ----------------------------------------------------
@dataclass
class Tokenized:
    """One split as ragged token arrays: example i is tokens[offsets[i]:offsets[i+1]]."""

    tokens: np.ndarray  # (N_tokens,) uint8
    offsets: np.ndarray  # (N + 1,) int64
    labels: np.ndarray  # (N,) int64

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def subset(self, rows: np.ndarray) -> Tokenized:
        """The examples `rows`, in that order."""
        lengths = self.lengths[rows]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        tokens = np.concatenate([self.tokens[self.offsets[r] : self.offsets[r + 1]] for r in rows]) if len(rows) else self.tokens[:0]
        return Tokenized(tokens, offsets, self.labels[rows])


def check_header(path: Path) -> None:
    """FPTError unless the file starts with LRA's `Source\\tTarget` header."""
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline().rstrip("\r\n")
    if first != HEADER:
        raise FPTError(f"{path}: first line must be LRA's header 'Source<TAB>Target', got {first[:40]!r}")


def tokenize_file(path: Path, paper_compat: bool) -> Tokenized:
    """Read an LRA ListOps TSV and tokenize every row."""
    check_header(path)
    drop = dropped_tokens(paper_compat)
    chunks, lengths, labels = [], [], []
    with open(path, encoding="utf-8") as f:
        next(f)
        for lineno, line in enumerate(f, start=2):
            if not line.strip():
                continue
            source, tab, target = line.rstrip("\r\n").rpartition("\t")
            if not tab:
                raise FPTError(f"{path}:{lineno}: expected 'source<TAB>label', found no tab")
            labels.append(_label(target, path, lineno))
            ids = tokenize(source, drop)
            chunks.append(np.asarray(ids, dtype=np.uint8))
            lengths.append(len(ids))
    if not labels:
        raise FPTError(f"{path}: no examples after the header")
    tokens = np.concatenate(chunks)
    if (unknown := int((tokens == UNK_ID).sum())):
        print(f"note: {path.name}: {unknown} token(s) outside the ListOps vocabulary mapped to <unk>", file=sys.stderr)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return Tokenized(tokens, offsets, np.asarray(labels, dtype=np.int64))


def _label(target: str, path: Path, lineno: int) -> int:
    t = target.strip()
    if len(t) != 1 or not t.isdigit():
        raise FPTError(f"{path}:{lineno}: label {t[:20]!r} is not a digit 0-9")
    return int(t)


_FILE_HASHES: dict[tuple, str] = {}  # (path, size, mtime) -> content hash: prepare_data and setup hash once


def file_hash(path: Path) -> str:
    """sha256 of the file's bytes (memoised while its size and mtime stay the same)."""
    st = path.stat()
    stamp = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if stamp not in _FILE_HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(1 << 22):
                h.update(block)
        _FILE_HASHES[stamp] = h.hexdigest()
    return _FILE_HASHES[stamp]


def cache_key(path: Path, paper_compat: bool) -> str:
    """Hash of the file's bytes and the tokenizer settings: a new file or setting gets a new cache."""
    settings = json.dumps({"v": TOKENIZER_VERSION, "tokens": TOKENS, "drop": sorted(dropped_tokens(paper_compat))})
    return hashlib.sha256(f"{settings}\n{file_hash(path)}".encode()).hexdigest()[:20]


def load_split(path: Path, paper_compat: bool) -> Tokenized:
    """The split's tokens from `<dir>/.cache/` if its key matches, else tokenize and cache them."""
    mode = "paper" if paper_compat else "lra"
    cache_dir = path.parent / ".cache"
    cached = cache_dir / f"{path.stem}.{mode}.{cache_key(path, paper_compat)}.npz"
    if cached.is_file():
        with np.load(cached) as z:
            return Tokenized(z["tokens"], z["offsets"], z["labels"])
    data = tokenize_file(path, paper_compat)
    try:
        _write_cache(cached, data, stale=f"{path.stem}.{mode}.*.npz")
    except OSError as e:  # a read-only dataset folder: work on without a cache
        print(f"note: cannot cache ListOps tokens in {cache_dir} ({e.strerror}); tokenizing on every run", file=sys.stderr)
    return data


def _write_cache(target: Path, data: Tokenized, stale: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    for old in target.parent.glob(stale):  # same split and settings, older file contents
        old.unlink(missing_ok=True)
    tmp = target.with_name(f"{target.stem}.{os.getpid()}.tmp.npz")  # atomic: ranks may race
    np.savez(tmp, tokens=data.tokens, offsets=data.offsets, labels=data.labels)
    os.replace(tmp, target)


# --- LRA's generator -------------------------------------------------------------------------
class _Uniforms:
    """Uniform draws from a seeded numpy Generator, fetched in blocks (one scalar call each is slow)."""

    def __init__(self, seed: int, block: int = 8192):
        self.rng, self.block, self.buf, self.i = np.random.default_rng(seed), block, np.empty(0), 0

    def __call__(self) -> float:
        if self.i == len(self.buf):
            self.buf, self.i = self.rng.random(self.block), 0
        self.i += 1
        return float(self.buf[self.i - 1])

    def integer(self, low: int, high: int) -> int:
        """Uniform integer in [low, high]."""
        return low + int(self() * (high - low + 1))


class _TooLong(Exception):
    pass


def _tree(u: _Uniforms, depth: int, max_depth: int, max_args: int, budget: list[int]):
    """LRA's generate_tree: a digit w.p. 0.75 below max_depth (always at it), else an operator node."""
    if depth >= max_depth or u() > 0.25:
        budget[0] -= 1
        return u.integer(0, 9)
    budget[0] -= 2  # the operator and its closing `]`
    op = OPERATORS[u.integer(0, len(OPERATORS) - 1)]
    children = []
    for _ in range(u.integer(2, max_args)):
        if budget[0] <= 0:  # already too long: acceptance depends only on length, so stop early
            raise _TooLong
        children.append(_tree(u, depth + 1, max_depth, max_args, budget))
    return op, children


def tree_length(tree) -> int:
    """Operators + values + closers (LRA's length)."""
    return 1 if isinstance(tree, int) else 2 + sum(tree_length(c) for c in tree[1])


def evaluate(tree) -> int:
    """The value of an expression: MIN, MAX, MED (integer part of the median), SM (sum mod 10)."""
    if isinstance(tree, int):
        return tree
    op, args = tree[0], [evaluate(c) for c in tree[1]]
    if op == "[MIN":
        return min(args)
    if op == "[MAX":
        return max(args)
    if op == "[MED":
        return int(statistics.median(args))
    return sum(args) % 10


def lra_string(tree) -> str:
    """LRA's text: each node written left-nested, `( ( ( [MAX 2 ) 9 ) ] )` for [MAX 2 9 ]."""
    if isinstance(tree, int):
        return str(tree)
    op, children = tree
    parts = ["( " * (len(children) + 1) + op, lra_string(children[0]), ")"]
    for c in children[1:]:
        parts += [lra_string(c), ")"]
    return " ".join([*parts, "] )"])


def generate(n: int, seed: int = 0, min_len: int = 500, max_len: int = 2000, max_depth: int = 10, max_args: int = 10,
             exclude: set[str] | None = None) -> list[tuple[str, int]]:
    """`n` distinct (LRA source, label) pairs with min_len < length < max_len, by rejection sampling."""
    u, seen, out = _Uniforms(seed), set(exclude or ()), []
    tries, limit = 0, max(100_000, 1000 * n)
    while len(out) < n:
        tries += 1
        if tries > limit:
            raise FPTError(f"only {len(out)} of {n} distinct expressions with {min_len} < length < {max_len} in {limit} tries; "
                           f"widen min_len/max_len or raise max_depth/max_args")
        budget = [max_len - 1]  # length must stay below max_len
        try:
            tree = _tree(u, 1, max_depth, max_args, budget)
        except _TooLong:
            continue
        length = max_len - 1 - budget[0]
        source = lra_string(tree)
        if min_len < length < max_len and source not in seen:
            seen.add(source)
            out.append((source, evaluate(tree)))
    return out


class GeneratorOptions(Options):
    """The generator's options: `fpt data listops key=value` and listops_small's `task.generate`."""

    train_size: Count = 2000
    val_size: Count = 200
    test_size: Count = 200
    min_len: Count = 500  # lengths (ops + values + closers) strictly between min_len and max_len
    max_len: Count = 2000
    max_depth: rule(int, lambda v: 1 <= v <= 100, "an integer in 1..100") = 10
    max_args: rule(int, lambda v: v >= 2, "an integer >= 2 (an operator takes 2..max_args)") = 10
    seed: NonNegative = 0

    @model_validator(mode="after")
    def _room_between(self):
        if self.max_len - self.min_len < 2:
            raise Invalid(f"listops lengths are strictly between min_len and max_len: need max_len >= min_len + 2, "
                          f"got {self.min_len}, {self.max_len}")
        return self


GENERATOR_DEFAULTS = GeneratorOptions().model_dump()


# --- batches ---------------------------------------------------------------------------------
class TokenSet(Dataset):
    """Examples of one split, cut to `max_len` tokens (their first ones) when read."""

    def __init__(self, data: Tokenized, max_len: int):
        self.data, self.max_len = data, max_len

    def __len__(self) -> int:
        return len(self.data.labels)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        start = self.data.offsets[i]
        end = min(self.data.offsets[i + 1], start + self.max_len)
        return self.data.tokens[start:end], int(self.data.labels[i])

    def lengths(self) -> np.ndarray:
        return np.minimum(self.data.lengths, self.max_len)


def collate(rows: list[tuple[np.ndarray, int]]) -> dict[str, torch.Tensor]:
    """Right-pad to the batch's longest sequence: x (b, t) long, mask (b, t) bool, y (b, 1) long."""
    t = max(len(seq) for seq, _ in rows)
    x = torch.full((len(rows), t), PAD_ID, dtype=torch.long)
    for i, (seq, _) in enumerate(rows):
        x[i, : len(seq)] = torch.from_numpy(seq.astype(np.int64))
    mask = x != PAD_ID  # no real token has the pad id
    y = torch.tensor([[label] for _, label in rows], dtype=torch.long)  # (b, 1)
    return {"x": x, "mask": mask, "y": y}


def _by_length(ds: TokenSet) -> list[int]:
    """Evaluation order: by length, so batches pad little (order does not change accuracy)."""
    return np.argsort(ds.lengths(), kind="stable").tolist()


# --- the task --------------------------------------------------------------------------------
class ListOpsOptions(TaskOptions):
    max_len: Count = 2000
    readout: SequenceReadout = "last"
    paper_compat: Flag = False
    bucket: Flag = True
    val_size: CountOrNull = None  # null: the whole file
    test_size: CountOrNull = None
    data_seed: NonNegative = 1234


class ListOps(Task):
    """LRA ListOps from TSV files: token ids in, the expression's value (0-9) out."""

    Options = ListOpsOptions
    DataOptions = GeneratorOptions

    def __init__(self, batch_size=16, max_len=2000, readout="last", paper_compat=False, bucket=True,
                 val_size=None, test_size=None, data_seed=1234, seed=0, data=None):
        super().__init__(batch_size, seed, data)
        self.paper_compat, self.bucket, self.data_seed = paper_compat, bucket, int(data_seed)
        self.max_len = min(int(max_len), PAPER_MAX_LEN) if paper_compat else int(max_len)
        self.sizes = {"train": self.train_size, "val": val_size, "test": test_size}  # train: data.train_size
        self.spec = TaskSpec(seq_len=self.max_len, vocab_size=len(TOKENS), pad_id=PAD_ID, words=TOKENS, num_classes=10,
                             readout=str(readout), truncatable=True)
        self.sets: dict[str, TokenSet] = {}

    # files
    def data_dir(self) -> Path | None:
        """The first of `<root>/listops/` and `<root>/` holding all three split files."""
        for d in (self.root / "listops", self.root):
            if all((d / f).is_file() for f in SPLITS.values()):
                return d
        return None

    def data_files(self) -> list[Path]:
        d = self.data_dir()
        return [d / f for f in SPLITS.values()] if d is not None else []

    def check(self) -> None:
        """One-line FPTError if a split file is missing or lacks LRA's header."""
        d = self.data_dir()
        if d is None:
            nested = self.root / "listops"
            missing = [f for f in SPLITS.values() if not (nested / f).is_file()]
            raise FPTError(
                f"ListOps files missing: {', '.join(missing)} (looked in {nested}/ and {self.root}/); "
                f"get LRA's release from {LRA_URL}, unpack it and set data.root=.../lra_release/listops-1000, "
                f"or generate a small set with `fpt data listops out=DIR` and set data.root=DIR"
            )
        for f in SPLITS.values():
            check_header(d / f)

    @classmethod
    def write_data(cls, out: Path, **options) -> list[Path]:
        """Write LRA-format basic_{train,val,test}.tsv from the generator under `out/listops/`.

        Options (GENERATOR_DEFAULTS): train_size, val_size, test_size, min_len, max_len (the exclusive
        bounds on ops + values + closers, not the task's max_len), max_depth, max_args, seed.
        """
        o = {**GENERATOR_DEFAULTS, **options}
        gen = {k: o[k] for k in ("min_len", "max_len", "max_depth", "max_args")}
        total = o["train_size"] + o["val_size"] + o["test_size"]
        rows = generate(total, seed=o["seed"], **gen)  # all at once: no expression in two splits
        d = Path(out) / "listops"
        d.mkdir(parents=True, exist_ok=True)
        paths, start = [], 0
        for split, fname in SPLITS.items():
            n = o[f"{split}_size"]
            lines = [HEADER] + [f"{src}\t{label}" for src, label in rows[start : start + n]]
            (d / fname).write_text("\n".join(lines) + "\n", encoding="utf-8")
            paths.append(d / fname)
            start += n
        return paths

    # Lightning hooks
    def prepare_data(self) -> None:
        """Tokenize and cache every split once (rank 0 only), so the other ranks just load."""
        d = self._dir()
        for fname in SPLITS.values():
            load_split(d / fname, self.paper_compat)

    def setup(self, stage: str | None = None) -> None:
        """Load (from the cache) the splits this stage needs."""
        needed = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}.get(stage or "", tuple(SPLITS))
        for split in needed:
            if split not in self.sets:
                self.sets[split] = TokenSet(self._load(split), self.max_len)

    def fit_to(self, seq_len: int) -> None:
        """Cut every sequence to its first `seq_len` tokens (the outermost operator comes first)."""
        self.max_len = min(self.max_len, int(seq_len))
        self.spec = replace(self.spec, seq_len=self.max_len)
        for ds in self.sets.values():
            ds.max_len = self.max_len

    def raw_lengths(self, split: str) -> np.ndarray:
        """Tokens per example before the cut to max_len (LRA's ListOps: 98% longer than 512)."""
        return self._load(split).lengths

    def train_dataloader(self) -> DataLoader:
        """Shuffled batches, length-bucketed unless `bucket: false` or under DDP."""
        ds = self._set("train")
        world = self.trainer.world_size if self.trainer is not None else 1
        if world > 1:  # under DDP Lightning shards a plain sampler over the ranks
            return self._loader(ds, self.batch_size, shuffle=True, generator=torch.Generator().manual_seed(self.seed))
        lengths, pool = ds.lengths(), 50 if self.bucket else 1
        order = epoch_batches(self.trainer, lambda epoch: bucketed_batches(lengths, self.batch_size, self.seed, epoch, pool))
        return self._loader(ds, batch_sampler=order)

    def val_dataloader(self) -> DataLoader:
        """basic_val.tsv (all of it unless val_size is set)."""
        ds = self._set("val")
        return self._loader(ds, 2 * self.batch_size, sampler=_by_length(ds))  # no gradients: room for twice the batch

    def test_dataloader(self) -> DataLoader:
        """basic_test.tsv, in full unless test_size is set (the 2021 code tested on val)."""
        ds = self._set("test")
        return self._loader(ds, 2 * self.batch_size, sampler=_by_length(ds))

    # helpers
    def _dir(self) -> Path:
        d = self.data_dir()
        if d is None:
            self.check()  # raises the one-line error
        return d

    def _load(self, split: str) -> Tokenized:
        data = load_split(self._dir() / SPLITS[split], self.paper_compat)
        n = self.sizes[split]
        if n is not None and n < len(data.labels):  # the same subset for every run seed, nested across sizes
            rows = np.sort(np.random.default_rng(self.data_seed).permutation(len(data.labels))[:n])
            data = data.subset(rows)
        return data

    def _set(self, split: str) -> TokenSet:
        if split not in self.sets:
            self.setup({"train": "fit", "val": "validate", "test": "test"}[split])
        return self.sets[split]

    def _loader(self, ds: TokenSet, batch_size: int | None = None, **kw) -> DataLoader:
        if batch_size is not None:
            kw["batch_size"] = batch_size
        return loader(ds, self.data, collate_fn=collate, **kw)


class GeneratedListOpsOptions(ListOpsOptions):
    generate: GeneratorOptions = GeneratorOptions()


class GeneratedListOps(ListOps):
    """ListOps written by the toolkit's generator on first use, under `<data.root>/listops_generated-<hash>/`.

    For CPU-scale studies and users without the LRA release: the files are the same LRA-format TSVs
    that `fpt data listops` writes, generated once per set of generator options and then reused.
    """

    Options = GeneratedListOpsOptions

    def __init__(self, generate: dict | None = None, **kw):
        super().__init__(**kw)
        self.gen = {**GENERATOR_DEFAULTS, **dict(generate or {})}
        key = hashlib.sha256(json.dumps(self.gen, sort_keys=True).encode()).hexdigest()[:10]
        self.gen_root = self.root / f"listops_generated-{key}"

    def data_dir(self) -> Path | None:
        d = self.gen_root / "listops"
        return d if all((d / f).is_file() for f in SPLITS.values()) else None

    def check(self) -> None:
        if self.data_dir() is not None:
            return
        print(f"generating ListOps {self.gen} into {self.gen_root} (once)", file=sys.stderr)
        tmp = self.gen_root.with_name(f".{self.gen_root.name}.tmp{os.getpid()}")
        self.write_data(tmp, **self.gen)
        if self.data_dir() is None:  # another process may have finished first: keep its files
            os.replace(tmp, self.gen_root)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
