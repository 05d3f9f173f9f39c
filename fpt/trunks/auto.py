"""Any Hugging Face model (`trunk=auto trunk.path=DIR` or `trunk.name=HUB_ID`): AutoModel builds the base model
the saved config names (decoder-only LLMs without their LM head; T5-family encoder-decoders as their encoder),
and the freeze groups, blocks, widths, positions and causality are found from the model (fpt/trunks/discover.py).
ViT and Longformer saved folders get their own forwards (fpt/trunks/forward.py) by their model_type."""

from fpt.trunks.base import Arch

ARCH = Arch(name="auto")
