"""ListOps (LRA): nested MIN / MAX / MED / SM expressions over digits; predict the value (10 classes).

Reads LRA's `basic_{train,val,test}.tsv` (header `Source\\tTarget`) from `<data.root>/listops/` or
`<data.root>/`. Tokenization keeps the operators, the digits and the closing `]`, and drops only the
`(` `)` wrappers; ids come from the fixed table `TOKENS`, never from hash order. `paper_compat: true`
reproduces the 2021 code instead: every bracket dropped (so `]` too) and at most 512 tokens.
Each split is tokenized once into `<data dir>/.cache/` (safe to delete), keyed by the file's bytes
and the tokenizer settings (tasks/sequences.py: the cache, batches and loaders every sequence task shares). Too-long sequences keep their FIRST tokens: the outermost operator
opens the expression, and a prefix is a well-formed start of the same computation.

`ListOps.write_data` writes LRA's generator's rows (tasks/listops_gen.py) behind `fpt data listops out=DIR`.

Axes: b batch, t tokens.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from fpt.errors import FPTError
from fpt.config.schema import Count, CountOrNull, Flag, NonNegative, SequenceReadout
from fpt.tasks.base import TaskOptions, TaskSpec
from fpt.tasks.listops_gen import GENERATOR_DEFAULTS, OPERATORS, GeneratorOptions, evaluate, generate, lra_string, tree_length  # noqa: F401
from fpt.tasks.sequences import Ragged, SequenceTask, cached

# --- vocabulary and tokenizer ---------------------------------------------------------------
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


# --- the split files --------------------------------------------------------------------------
def check_header(path: Path) -> None:
    """FPTError unless the file starts with LRA's `Source\\tTarget` header."""
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline().rstrip("\r\n")
    if first != HEADER:
        raise FPTError(f"{path}: first line must be LRA's header 'Source<TAB>Target', got {first[:40]!r}")


def tokenize_file(path: Path, paper_compat: bool) -> Ragged:
    """Read an LRA ListOps TSV and tokenize every row."""
    check_header(path)
    drop = dropped_tokens(paper_compat)
    seqs, labels = [], []
    with open(path, encoding="utf-8") as f:
        next(f)
        for lineno, line in enumerate(f, start=2):
            if not line.strip():
                continue
            source, tab, target = line.rstrip("\r\n").rpartition("\t")
            if not tab:
                raise FPTError(f"{path}:{lineno}: expected 'source<TAB>label', found no tab")
            labels.append(_label(target, path, lineno))
            seqs.append(tokenize(source, drop))
    if not labels:
        raise FPTError(f"{path}: no examples after the header")
    data = Ragged.of(seqs, labels, path)
    if (unknown := int((data.tokens == UNK_ID).sum())):
        print(f"note: {path.name}: {unknown} token(s) outside the ListOps vocabulary mapped to <unk>", file=sys.stderr)
    return data


def _label(target: str, path: Path, lineno: int) -> int:
    t = target.strip()
    if len(t) != 1 or not t.isdigit():
        raise FPTError(f"{path}:{lineno}: label {t[:20]!r} is not a digit 0-9")
    return int(t)


def load_split(path: Path, paper_compat: bool) -> Ragged:
    """The split's tokens from `<dir>/.cache/` when the file and tokenizer are unchanged, else tokenized and cached."""
    settings = json.dumps({"v": TOKENIZER_VERSION, "tokens": TOKENS, "drop": sorted(dropped_tokens(paper_compat))})
    return cached(path, "paper" if paper_compat else "lra", settings, lambda: tokenize_file(path, paper_compat))


# --- the task --------------------------------------------------------------------------------
class ListOpsOptions(TaskOptions):
    max_len: Count = 2000
    readout: SequenceReadout = "last"
    paper_compat: Flag = False
    bucket: Flag = True
    val_size: CountOrNull = None  # null: the whole file
    test_size: CountOrNull = None
    data_seed: NonNegative = 1234


class ListOps(SequenceTask):
    """LRA ListOps from TSV files: token ids in, the expression's value (0-9) out."""

    Options = ListOpsOptions
    DataOptions = GeneratorOptions
    options: ListOpsOptions

    def __init__(self, options: ListOpsOptions | None = None, **kw):
        super().__init__(options, **kw)
        o = self.options
        self.bucket = 50 if o.bucket else 1  # batches per length-sorted pool; 1: plain shuffled batches
        self.max_len = min(o.max_len, PAPER_MAX_LEN) if o.paper_compat else o.max_len  # fit_to may cut it further
        self.sizes = {"train": self.train_size, "val": o.val_size, "test": o.test_size}  # train: data.train_size
        self.spec = TaskSpec(seq_len=self.max_len, vocab_size=len(TOKENS), pad_id=PAD_ID, words=TOKENS, num_classes=10,
                             readout=o.readout, truncatable=True)

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

    def read(self, split: str) -> Ragged:
        """A split's tokens (cached), cut to `val_size`/`test_size`/`data.train_size` examples when set: the same
        seeded subset for every run seed, nested across sizes. Too-long sequences keep their first tokens."""
        if self.data_dir() is None:
            self.check()  # the one-line error (GeneratedListOps: writes the files)
        data = load_split(self.data_dir() / SPLITS[split], self.options.paper_compat)
        n = self.sizes[split]
        if n is not None and n < len(data):
            data = data.subset(np.sort(np.random.default_rng(self.options.data_seed).permutation(len(data))[:n]))
        return data

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


class GeneratedListOpsOptions(ListOpsOptions):
    generate: GeneratorOptions = GeneratorOptions()


class GeneratedListOps(ListOps):
    """ListOps written by the toolkit's generator on first use, under `<data.root>/listops_generated-<hash>/`.

    For CPU-scale studies and users without the LRA release: the files are the same LRA-format TSVs
    that `fpt data listops` writes, generated once per set of generator options and then reused.
    """

    Options = GeneratedListOpsOptions
    options: GeneratedListOpsOptions

    def __init__(self, options: GeneratedListOpsOptions | None = None, **kw):
        super().__init__(options, **kw)
        self.gen = self.options.generate.model_dump()
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
