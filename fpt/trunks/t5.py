"""T5 encoder only: relative attention bias in block 0, RMS norms, no biases anywhere. A hand map, kept as the
reference the structure rules (fpt/trunks/discover.py) are tested against."""

from fpt.trunks.base import Arch

B = r"encoder\.block\.\d+"  # one block

ARCH = Arch(
    name="t5",
    model_class="T5EncoderModel",
    groups={
        "emb": [r"shared\.weight", r"encoder\.embed_tokens\.weight"],
        "pos": [rf"{B}\.layer\.0\.SelfAttention\.relative_attention_bias\.weight"],
        "attn": [rf"{B}\.layer\.0\.SelfAttention\.[qkvo]\.weight"],
        "ffn": [rf"{B}\.layer\.1\.DenseReluDense\.(wi|wi_0|wi_1|wo)\.weight"],
        "ln": [rf"{B}\.layer\.[01]\.layer_norm\.weight", r"encoder\.final_layer_norm\.weight"],
    },
    blocks="encoder.block",
    dropout_keys=("dropout_rate",),
    known_configs={
        "t5-small": dict(d_model=512, d_ff=2048, num_layers=6, num_heads=8, d_kv=64),
        "t5-base": dict(d_model=768, d_ff=3072, num_layers=12, num_heads=12, d_kv=64),
        "t5-large": dict(d_model=1024, d_ff=4096, num_layers=24, num_heads=16, d_kv=64),
    },
)
