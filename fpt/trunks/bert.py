"""BERT family (bert-base-*, MiniLM, ...): learned + token-type positions, post-norm blocks. A hand map, kept
as the reference the structure rules (fpt/trunks/discover.py) are tested against."""

from fpt.trunks.base import Arch

L = r"encoder\.layer\.\d+"  # one block

ARCH = Arch(
    name="bert",
    model_class="BertModel",
    groups={
        "emb": [r"embeddings\.word_embeddings\.weight"],
        # BERT adds the token-type row 0 to every position: it acts as part of the position signal.
        "pos": [r"embeddings\.(position|token_type)_embeddings\.weight"],
        # "output" is ambiguous in BERT (attention output vs FFN output): every pattern is anchored.
        "attn": [rf"{L}\.attention\.self\.(query|key|value)\.(weight|bias)", rf"{L}\.attention\.output\.dense\.(weight|bias)"],
        "ffn": [rf"{L}\.intermediate\.dense\.(weight|bias)", rf"{L}\.output\.dense\.(weight|bias)"],
        "ln": [r"embeddings\.LayerNorm\.(weight|bias)", rf"{L}\.attention\.output\.LayerNorm\.(weight|bias)", rf"{L}\.output\.LayerNorm\.(weight|bias)"],
    },
    blocks="encoder.layer",
    dropout_keys=("hidden_dropout_prob", "attention_probs_dropout_prob"),
    attn_dropout_key="attention_probs_dropout_prob",
    known_configs={
        "bert-base-uncased": dict(),
        "bert-base-cased": dict(vocab_size=28996),
        "bert-large-uncased": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
    },
    # The pooler is unused by FPT's readout; built, it would be a trainable parameter DDP rejects.
    load_kwargs={"add_pooling_layer": False},
)
