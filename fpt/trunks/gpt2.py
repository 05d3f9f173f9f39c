"""GPT-2 (gpt2 ... gpt2-xl): learned positions `wpe`, Conv1D linears, causal attention."""

from transformers import GPT2Config, GPT2Model

from fpt.trunks.base import Arch

ARCH = Arch(
    name="gpt2",
    model_cls=GPT2Model,
    config_cls=GPT2Config,
    groups={
        "emb": [r"wte\.weight"],
        "pos": [r"wpe\.weight"],
        "attn": [r"h\.\d+\.attn\.(c_attn|c_proj)\.(weight|bias)"],
        "ffn": [r"h\.\d+\.mlp\.(c_fc|c_proj)\.(weight|bias)"],
        "ln": [r"h\.\d+\.ln_[12]\.(weight|bias)", r"ln_f\.(weight|bias)"],
    },
    hidden=lambda c: c.n_embd,
    max_len=lambda c: c.n_positions,
    dropout_keys=("resid_pdrop", "embd_pdrop", "attn_pdrop"),
    attn_dropout_key="attn_pdrop",
    blocks="h",
    layers_key="n_layer",
    known_configs={
        "gpt2": dict(n_embd=768, n_layer=12, n_head=12),
        "gpt2-medium": dict(n_embd=1024, n_layer=24, n_head=16),
        "gpt2-large": dict(n_embd=1280, n_layer=36, n_head=20),
        "gpt2-xl": dict(n_embd=1600, n_layer=48, n_head=25),
    },
)
