"""T5 encoder only: relative attention bias in block 0, RMS norms, no biases anywhere."""

from transformers import T5Config, T5EncoderModel

from fpt.trunks.base import Arch

B = r"encoder\.block\.\d+"  # one block

ARCH = Arch(
    name="t5",
    model_cls=T5EncoderModel,
    config_cls=T5Config,
    groups={
        "emb": [r"shared\.weight", r"encoder\.embed_tokens\.weight"],
        "pos": [rf"{B}\.layer\.0\.SelfAttention\.relative_attention_bias\.weight"],
        "attn": [rf"{B}\.layer\.0\.SelfAttention\.[qkvo]\.weight"],
        "ffn": [rf"{B}\.layer\.1\.DenseReluDense\.(wi|wi_0|wi_1|wo)\.weight"],
        "ln": [rf"{B}\.layer\.[01]\.layer_norm\.weight", r"encoder\.final_layer_norm\.weight"],
    },
    hidden=lambda c: c.d_model,
    max_len=lambda c: None,  # relative positions: no hard limit
    dropout_keys=("dropout_rate",),
    blocks="encoder.block",
    layers_key="num_layers",
    known_configs={
        "t5-small": dict(d_model=512, d_ff=2048, num_layers=6, num_heads=8, d_kv=64),
        "t5-base": dict(d_model=768, d_ff=3072, num_layers=12, num_heads=12, d_kv=64),
        "t5-large": dict(d_model=1024, d_ff=4096, num_layers=24, num_heads=16, d_kv=64),
    },
)
