"""`model.input_init=trunk_tokens`: a vocabulary task's input Embedding starts from the trunk's own token embeddings.

The task names each id's string (`TaskSpec.words`; ListOps: `0`..`9`, `[MIN`, `[MAX`, `[MED`, `[SM`, `]`, `<pad>`,
`<unk>`), so the digits and operators are words the trunk has read before. Each word is split by the trunk's own
tokenizer (AutoTokenizer from the trunk's folder) and its row is the mean of those tokens' rows of the trunk's input
embedding table. `<pad>` and `<unk>` stand for the tokenizer's own pad and unk tokens. With `input` in
`trunk.standardize` the table is then rescaled to zero mean and Xavier's std, as `trunk.standardize` does to a
trunk's groups (fpt/trunks/init.py).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from fpt.errors import FPTError
from fpt.trunks.init import xavier_std

MODES = ("default", "trunk_tokens")
SPECIAL = {"<pad>": "pad_token", "<unk>": "unk_token"}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model", "tokenizer.model")


def apply_input_init(model: nn.Module, cfg) -> None:
    """Initialise `model.input` as `model.input_init` says (default: leave the Embedding / Linear as built)."""
    mode = str(cfg.model.get("input_init") or "default")
    standardize = "input" in list(cfg.trunk.get("standardize") or [])
    if mode == "default":
        if standardize:
            raise FPTError("trunk.standardize names input, which only model.input_init=trunk_tokens initialises "
                           "from the trunk; add model.input_init=trunk_tokens or drop input from trunk.standardize")
        return
    spec = model.spec
    if spec.vocab_size is None or spec.words is None:
        what = "continuous tokens (no vocabulary)" if spec.vocab_size is None else "a vocabulary without word strings"
        raise FPTError(f"model.input_init=trunk_tokens needs a task whose vocabulary names its words; this task has {what}")
    words = token_rows(model.trunk, tokenizer(cfg.trunk), spec.words)  # (vocab, width)
    with torch.no_grad():
        model.input.weight.copy_(words)
        if standardize:
            w = model.input.weight
            w.copy_((w - w.mean()) / w.std().clamp_min(1e-12) * xavier_std(w.shape))


def tokenizer(tcfg, why: str = "model.input_init=trunk_tokens"):
    """The trunk's own tokenizer, from the folder its weights come from; one line if it has none (`why`: who asks)."""
    from transformers import AutoTokenizer

    from fpt.trunks.source import resolve_source

    src, local = resolve_source(tcfg)
    if local and not any((Path(src) / f).is_file() for f in TOKENIZER_FILES):  # transformers 5 would build an empty one
        raise FPTError(f"{why} reads the trunk's tokenizer, but {src} has none "
                       f"(no {', '.join(TOKENIZER_FILES[:3])}, ...)")
    try:
        return AutoTokenizer.from_pretrained(src, local_files_only=local)
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise FPTError(f"{why} reads the trunk's tokenizer, but {src} has none "
                       f"({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None


@torch.no_grad()
def token_rows(trunk: nn.Module, tok, words: tuple[str, ...]) -> torch.Tensor:
    """(len(words), width): each word's mean token embedding in `trunk`'s input embedding table."""
    table = trunk.get_input_embeddings()
    weight = getattr(table, "weight", None)
    if weight is None or weight.dim() != 2:
        raise FPTError(f"model.input_init=trunk_tokens: this {type(trunk).__name__} trunk has no token embedding table")
    rows = []
    for w in words:
        text = getattr(tok, SPECIAL[w], None) if w in SPECIAL else w
        ids = tok.convert_tokens_to_ids([text]) if w in SPECIAL and text else tok(text or w, add_special_tokens=False)["input_ids"]
        if not ids or (w not in SPECIAL and all(i == tok.unk_token_id for i in ids)):
            raise FPTError(f"model.input_init=trunk_tokens: the trunk's tokenizer does not know the word {w!r}")
        if max(ids) >= weight.shape[0]:
            raise FPTError(f"model.input_init=trunk_tokens: the tokenizer's ids reach {max(ids)} but the trunk's table has "
                           f"{weight.shape[0]} rows; is the tokenizer this trunk's?")
        rows.append(weight[torch.tensor(ids)].float().mean(0))
    return torch.stack(rows)
