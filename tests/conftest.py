"""Shared fixtures: offline before any import, tiny trunks saved with save_pretrained, configs."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # must precede any transformers / huggingface_hub import
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")
import tempfile  # noqa: E402

os.environ["FPT_CACHE"] = tempfile.mkdtemp(prefix="fpt-test-cache-")  # feature caches of tests, never ~/.cache

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


def save_tiny_trunks(root: Path) -> dict[str, Path]:
    """Tiny GPT-2 / BERT / T5 models built from configs and saved as Hugging Face folders."""
    from transformers import BertConfig, BertModel, GPT2Config, GPT2Model, T5Config, T5EncoderModel

    torch.manual_seed(1234)  # not 0: a random-init trunk seeded 0 must differ from these 'pretrained' ones
    paths = {a: root / a for a in ("gpt2", "bert", "t5")}
    GPT2Model(GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=64, bos_token_id=0, eos_token_id=0)).save_pretrained(paths["gpt2"])
    # saved with its pooler, like a real BERT checkpoint; the loader leaves the pooler out
    BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         max_position_embeddings=64, vocab_size=64)).save_pretrained(paths["bert"])
    T5EncoderModel(T5Config(d_model=32, d_ff=64, num_layers=2, num_heads=2, d_kv=16, vocab_size=64)).save_pretrained(paths["t5"])
    return paths


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """{arch: folder} of tiny saved trunks."""
    return save_tiny_trunks(tmp_path_factory.mktemp("trunks"))


FAST = [
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.accelerator=cpu",
    "task.val_size=256",
    "task.test_size=256",
]


def compose_cfg(*overrides: str):
    """The composed training config for these overrides (as `fpt train` would see it)."""
    from fpt.config import compose, rewrite

    return compose(rewrite(list(overrides)))


def tiny_cfg(tiny: dict, arch: str = "gpt2", *overrides: str):
    """A fast config on a tiny trunk of `arch`."""
    return compose_cfg(f"trunk={arch}", f"trunk.path={tiny[arch]}", *FAST, *overrides)
