"""GPT-2 (gpt2 ... gpt2-xl): learned positions `wpe`, Conv1D linears, causal attention. A hand map, kept
as the reference the structure rules (fpt/trunks/discover.py) are tested against."""

from fpt.trunks.base import Arch

ARCH = Arch(
    name="gpt2",
    model_class="GPT2Model",
    groups={
        "emb": [r"wte\.weight"],
        "pos": [r"wpe\.weight"],
        "attn": [r"h\.\d+\.attn\.(c_attn|c_proj)\.(weight|bias)"],
        "ffn": [r"h\.\d+\.mlp\.(c_fc|c_proj)\.(weight|bias)"],
        "ln": [r"h\.\d+\.ln_[12]\.(weight|bias)", r"ln_f\.(weight|bias)"],
    },
    blocks="h",
    dropout_keys=("resid_pdrop", "embd_pdrop", "attn_pdrop"),
    attn_dropout_key="attn_pdrop",
    known_configs={
        "gpt2": dict(n_embd=768, n_layer=12, n_head=12),
        "gpt2-medium": dict(n_embd=1024, n_layer=24, n_head=16),
        "gpt2-large": dict(n_embd=1280, n_layer=36, n_head=20),
        "gpt2-xl": dict(n_embd=1600, n_layer=48, n_head=25),
    },
)
