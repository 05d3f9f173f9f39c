"""Plain helpers the tests import: tiny trunks and their configs, the zoo of tiny models, fast config overrides.

Fixtures live in conftest.py (pytest injects them); nothing here is a fixture, and nothing imports conftest.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import torch


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


# --- a zoo of tiny Hugging Face models, one per family the structure rules must read -------------------------
def zoo_configs() -> dict:
    """family -> (config class name, kwargs): the smallest configs (hidden 16, 2 blocks, 2 heads, vocab 32)."""
    h = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, vocab_size=32)
    decoder = dict(**h, intermediate_size=32, max_position_embeddings=64, num_key_value_heads=1)
    encoder = dict(**h, intermediate_size=32, max_position_embeddings=64)
    vit = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, image_size=28,
               patch_size=4, num_channels=1)  # a 7x7 patch grid: 49 task tokens at most
    dino = {**{k: v for k, v in vit.items() if k != "intermediate_size"}, "mlp_ratio": 2}  # DINOv2 sizes its MLP by ratio
    return {
        "gpt2": ("GPT2Config", dict(n_layer=2, n_head=2, n_embd=16, n_positions=64, vocab_size=32, bos_token_id=0, eos_token_id=0)),
        "bert": ("BertConfig", encoder),
        "t5": ("T5Config", dict(d_model=16, d_ff=32, num_layers=2, num_heads=2, d_kv=8, vocab_size=32)),
        "llama": ("LlamaConfig", dict(**decoder, bos_token_id=0, eos_token_id=0)),
        "qwen2": ("Qwen2Config", decoder),
        "mistral": ("MistralConfig", dict(**decoder, head_dim=8)),
        "gemma": ("GemmaConfig", dict(**decoder, head_dim=8, pad_token_id=0, bos_token_id=0, eos_token_id=0)),
        "phi3": ("Phi3Config", dict(**{**decoder, "num_key_value_heads": 2}, pad_token_id=0, bos_token_id=0, eos_token_id=0)),
        "gpt_neox": ("GPTNeoXConfig", dict(**encoder, bos_token_id=0, eos_token_id=0)),
        "opt": ("OPTConfig", dict(hidden_size=16, ffn_dim=32, num_hidden_layers=2, num_attention_heads=2, vocab_size=32,
                                  max_position_embeddings=64, word_embed_proj_dim=16, pad_token_id=1, bos_token_id=0, eos_token_id=0)),
        "roberta": ("RobertaConfig", {**encoder, "max_position_embeddings": 66}),
        "distilbert": ("DistilBertConfig", dict(dim=16, hidden_dim=32, n_layers=2, n_heads=2, vocab_size=32, max_position_embeddings=64)),
        "electra": ("ElectraConfig", dict(**encoder, embedding_size=8)),
        "deberta_v2": ("DebertaV2Config", dict(**encoder, relative_attention=True, position_biased_input=False,
                                               pos_att_type=["p2c", "c2p"], max_relative_positions=16, position_buckets=8,
                                               norm_rel_ebd="layer_norm", share_att_key=True)),  # as DeBERTa-v3
        "longformer": ("LongformerConfig", {**encoder, "max_position_embeddings": 66, "attention_window": 4}),
        "albert": ("AlbertConfig", dict(**encoder, embedding_size=8)),  # one shared layer group, run twice
        "vit": ("ViTConfig", vit),
        "deit": ("DeiTConfig", vit),  # CLS + distillation token
        "beit": ("BeitConfig", dict(**vit, use_relative_position_bias=True)),  # as microsoft/beit-*: relative bias per
        #                                                                       block, mean pooling, layer scale
        "dinov2": ("Dinov2Config", dino),
        "dinov2_with_registers": ("Dinov2WithRegistersConfig", dict(**dino, num_register_tokens=2)),
    }


def save_tiny(root: Path, family: str, **changes) -> Path:
    """One tiny model of `family` (zoo_configs), built from its config, saved with save_pretrained under root."""
    import transformers

    name, kwargs = zoo_configs()[family]
    config = getattr(transformers, name)(**{**kwargs, **changes})
    torch.manual_seed(1234)
    if family == "t5":
        model = transformers.T5EncoderModel(config)
    else:
        model = transformers.AutoModel.from_config(config)
    path = root / family
    model.save_pretrained(path)
    return path


def trunk_cfg(**kw):
    """A bare trunk config node (gpt2, pretrained, seed 0) with `kw` changed, as load_trunk reads it."""
    from omegaconf import OmegaConf

    base = dict(arch="gpt2", name="gpt2", path=None, package=None, init="pretrained", init_seed=0, dropout=None)
    return OmegaConf.create({**base, **kw})


# --- what the structure rules must find in each zoo family (tests/test_trunk_*.py) ---------------------------
IO = {"input.weight", "input.bias", "output.weight", "output.bias"}  # the wrapper's own layers: always trainable
BOTH = (0, 1)


def _blocks(*patterns: str) -> set[str]:
    """Names with {i} expanded over the two blocks of a tiny trunk."""
    return {p.format(i=i) for p in patterns for i in BOTH}


BERT_LIKE = {"embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias", "embeddings.position_embeddings.weight",
             "embeddings.token_type_embeddings.weight"} | _blocks(
    "encoder.layer.{i}.attention.output.LayerNorm.weight", "encoder.layer.{i}.attention.output.LayerNorm.bias",
    "encoder.layer.{i}.output.LayerNorm.weight", "encoder.layer.{i}.output.LayerNorm.bias")
VIT_LIKE = {"embeddings.position_embeddings", "layernorm.weight", "layernorm.bias"} | _blocks(
    "layers.{i}.layernorm_before.weight", "layers.{i}.layernorm_before.bias",
    "layers.{i}.layernorm_after.weight", "layers.{i}.layernorm_after.bias")
DINO = {"embeddings.position_embeddings", "layernorm.weight", "layernorm.bias"} | _blocks(
    "encoder.layer.{i}.norm1.weight", "encoder.layer.{i}.norm1.bias", "encoder.layer.{i}.norm2.weight", "encoder.layer.{i}.norm2.bias")
RMS_DECODER = {"norm.weight"} | _blocks("layers.{i}.input_layernorm.weight", "layers.{i}.post_attention_layernorm.weight")

# what the structure rules must find in each zoo family:
# family -> (trunk.arch, model class, blocks, positions, limit, causal, trainable trunk tensors under freeze=attn,ffn)
ZOO_TABLE = {
    "gpt2": ("auto", "GPT2Model", "h", "learned", 64, True,
             {"wpe.weight", "ln_f.weight", "ln_f.bias"} | _blocks("h.{i}.ln_1.weight", "h.{i}.ln_1.bias", "h.{i}.ln_2.weight", "h.{i}.ln_2.bias")),
    "bert": ("auto", "BertModel", "encoder.layer", "learned", 64, False, BERT_LIKE),
    "t5": ("auto", "T5EncoderModel", "encoder.block", "relative", None, False,
           {"encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", "encoder.final_layer_norm.weight"}
           | _blocks("encoder.block.{i}.layer.0.layer_norm.weight", "encoder.block.{i}.layer.1.layer_norm.weight")),
    "llama": ("auto", "LlamaModel", "layers", "rotary", None, True, RMS_DECODER),
    "qwen2": ("auto", "Qwen2Model", "layers", "rotary", None, True, RMS_DECODER),
    "mistral": ("auto", "MistralModel", "layers", "rotary", None, True, RMS_DECODER),
    "gemma": ("auto", "GemmaModel", "layers", "rotary", None, True, RMS_DECODER),
    "phi3": ("auto", "Phi3Model", "layers", "rotary", None, True, RMS_DECODER),
    "gpt_neox": ("auto", "GPTNeoXModel", "layers", "rotary", None, True,
                 {"final_layer_norm.weight", "final_layer_norm.bias"} | _blocks(
                     "layers.{i}.input_layernorm.weight", "layers.{i}.input_layernorm.bias",
                     "layers.{i}.post_attention_layernorm.weight", "layers.{i}.post_attention_layernorm.bias")),
    "opt": ("auto", "OPTModel", "decoder.layers", "learned", 64, True,
            {"decoder.embed_positions.weight", "decoder.final_layer_norm.weight", "decoder.final_layer_norm.bias"} | _blocks(
                "decoder.layers.{i}.self_attn_layer_norm.weight", "decoder.layers.{i}.self_attn_layer_norm.bias",
                "decoder.layers.{i}.final_layer_norm.weight", "decoder.layers.{i}.final_layer_norm.bias")),
    "roberta": ("auto", "RobertaModel", "encoder.layer", "learned", 64, False, BERT_LIKE),  # 66 rows, offset 2
    "distilbert": ("auto", "DistilBertModel", "transformer.layer", "learned", 64, False,
                   {"embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias", "embeddings.position_embeddings.weight"} | _blocks(
                       "transformer.layer.{i}.sa_layer_norm.weight", "transformer.layer.{i}.sa_layer_norm.bias",
                       "transformer.layer.{i}.output_layer_norm.weight", "transformer.layer.{i}.output_layer_norm.bias")),
    "electra": ("auto", "ElectraModel", "encoder.layer", "learned", 64, False, BERT_LIKE),
    "deberta_v2": ("auto", "DebertaV2Model", "encoder.layer", "relative", None, False,
                   {"embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias", "encoder.rel_embeddings.weight",
                    "encoder.LayerNorm.weight", "encoder.LayerNorm.bias"} | (BERT_LIKE - {
                        "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias", "embeddings.position_embeddings.weight",
                        "embeddings.token_type_embeddings.weight"})),
    "longformer": ("longformer", "LongformerModel", "encoder.layer", "learned", 64, False, BERT_LIKE),  # 66 rows, offset 2
    "vit": ("vit", "ViTModel", "layers", "learned", 49, False, VIT_LIKE),
    "deit": ("auto", "DeiTModel", "layers", "learned", 49, False, VIT_LIKE),  # 51 rows: CLS, distillation, 49 patches
    # relative bias per block; mean pooling: no final norm; layer scale lambda_1 is attn, lambda_2 ffn
    "beit": ("auto", "BeitModel", "layers", "relative", 49, False, VIT_LIKE - {
        "embeddings.position_embeddings", "layernorm.weight", "layernorm.bias"} | _blocks(
            "layers.{i}.relative_position_bias.relative_position_bias_table")),
    "dinov2": ("auto", "Dinov2Model", "encoder.layer", "learned", 49, False, DINO),
    "dinov2_with_registers": ("auto", "Dinov2WithRegistersModel", "encoder.layer", "learned", 49, False, DINO),
}


def xor_spec():
    """bit_xor's task spec: 10 one-dimensional tokens, two classes, read from the last 5."""
    from fpt.tasks.base import TaskSpec

    return TaskSpec(seq_len=10, token_dim=1, num_classes=2, readout="last_k", k=5)


def auto_cfg(zoo, family, *overrides):
    """A fast fp32 config on the zoo's tiny model of `family`, through the trunk preset ZOO_TABLE names for it."""
    arch = ZOO_TABLE[family][0] if family in ZOO_TABLE else "auto"
    return compose_cfg(f"trunk={arch}", f"trunk.path={zoo[family]}", *FAST, "trainer.precision=32-true", *overrides)


def trainable_names(model) -> set[str]:
    """Names of the parameters that train."""
    return {n for n, p in model.named_parameters() if p.requires_grad}


# --- small data in the real on-disk formats ---------------------------------------------------------------
LISTOPS_SMALL = dict(train_size=24, val_size=8, test_size=8, min_len=20, max_len=80, max_depth=6, max_args=5, seed=3)


# --- the `fpt` command, in this process or as a user types it ----------------------------------------------
FPT = [sys.executable, "-m", "fpt.cli"]
ROOT = Path(__file__).resolve().parents[1]


def run_fpt(capsys, *args) -> tuple[int, str, str]:
    """`fpt ARGS` in this process: (exit code, stdout, stderr); a Hydra job's failure exits, its SystemExit is its code."""
    from fpt.cli import main

    try:
        code = main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def run_fpt_process(*args, cwd=None, env=None) -> tuple[subprocess.CompletedProcess, float]:
    """`fpt ARGS` in a subprocess, offline, from the repository root unless cwd says: (process, seconds)."""
    t0 = time.perf_counter()
    e = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    p = subprocess.run([*FPT, *args], capture_output=True, text=True, cwd=cwd or ROOT, env=e, timeout=600)
    return p, time.perf_counter() - t0
