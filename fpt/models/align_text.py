"""The reference text of the alignment stage: `model.align_text=FILE`, or by default English prose a dependency ships.

ORCA's source is CoNLL-2003 (sjunhongshen/ORCA src/data_loaders.py `load_text`: precomputed embeddings, downloaded).
Offline, the default is scikit-learn's dataset descriptions (sklearn/datasets/descr/*.rst: 15 files, about 5,300
words, about 8,000 MiniLM tokens): sentences about the iris, digits, wine, housing, newsgroups, ... data sets. Lines
of reStructuredText markup (directives, tables, rules) are left out; what remains is prose.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fpt.errors import FPTError

MARKUP = ("..", ":", "=", "-", "|", "+", "*", "[")  # rst directives, fields, rules, tables, list bullets, citations


def default_text() -> str:
    """scikit-learn's dataset descriptions, prose lines only, joined in file order."""
    import sklearn.datasets

    folder = Path(sklearn.datasets.__file__).parent / "descr"
    lines = []
    for f in sorted(folder.glob("*.rst")):
        lines += [ln.strip() for ln in f.read_text(encoding="utf-8").splitlines()
                  if ln.strip() and not ln.strip().startswith(MARKUP)]
    return " ".join(lines)


def read_text(path: str | None) -> str:
    """The reference text: the file at `path` (UTF-8), or the default; one line when it cannot be read or is empty."""
    if path is None:
        return default_text()
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise FPTError(f"model.align_text={path}: cannot read it ({type(e).__name__}: {str(e).splitlines()[0][:100]}); "
                       f"give a UTF-8 text file, or leave it null for the bundled default") from None
    if not text.strip():
        raise FPTError(f"model.align_text={path} is empty: the alignment stage needs text for the trunk to embed")
    return text


def windows(tok, text: str, length: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, L) token ids and (n, L) mask: `n` windows of `length` tokens (fewer if the text is shorter) spread evenly
    over the text, without the tokenizer's special tokens (task sequences have none either)."""
    ids = tok(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise FPTError("model.align_text: the trunk's tokenizer makes no tokens of this text; give a file of prose")
    length = min(length, len(ids))
    starts = torch.linspace(0, len(ids) - length, n).round().long().unique()
    rows = torch.stack([torch.tensor(ids[s : s + length]) for s in starts.tolist()])  # (n', L)
    return rows, torch.ones_like(rows, dtype=torch.bool)
