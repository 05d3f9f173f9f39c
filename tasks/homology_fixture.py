"""A small learnable remote-homology fixture in TAPE's formats: `fpt data remote_homology out=DIR`.

Random residues with a fold's 8-residue motif recurring every ~50 residues (so a truncated sequence keeps it),
a few unresolved `X`, balanced folds, some sequences longer than 1024; written as TAPE's JSON lists and LMDB
directories (pickled records under b"0", b"1", ... and b"num_examples") for all five splits.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np

from fpt.errors import FPTError


def write_fixture(out: Path, splits: tuple[str, ...], format: str = "both", n_train: int = 480, n_valid: int = 96, n_test: int = 96,
                  n_folds: int = 8, long_frac: float = 0.03, seed: int = 0) -> list[Path]:
    """The fixture's files under `out/remote_homology/` (json, lmdb or both) for TAPE's `splits` (train, valid, the
    test holdouts: fpt.tasks.homology.SPLITS); options as HomologyFixtureOptions."""
    sizes = {"train": n_train, "valid": n_valid, **{s: n_test for s in splits[2:]}}
    folder = Path(out).expanduser() / "remote_homology"
    folder.mkdir(parents=True, exist_ok=True)
    motifs = _motifs(int(n_folds), int(seed))
    written = []
    for k, split in enumerate(splits):
        records = fixture_records(int(sizes[split]), motifs, float(long_frac), np.random.default_rng([int(seed), k]), split)
        if format in ("json", "both"):
            written.append(write_json(folder / f"remote_homology_{split}.json", records))
        if format in ("lmdb", "both"):
            written.append(write_lmdb(folder / f"remote_homology_{split}.lmdb", records))
    return written


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
