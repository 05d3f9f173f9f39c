"""Any Hugging Face model (`trunk=auto trunk.path=DIR` or `trunk.name=HUB_ID`): AutoModel builds the base model
the saved config names (decoder-only LLMs without their LM head; T5-family encoder-decoders as their encoder),
and the freeze groups, blocks, widths, positions and causality are found from the model (fpt/trunks/discover.py).
ViT-style image encoders (ViT, DeiT, BEiT, DINOv2 with or without registers: fpt/trunks/vision.py) and Longformer get
their own forwards (fpt/trunks/forward.py) by their model_type; image models task tokens cannot pass through (Swin's
stages merge patches, ConvNeXt convolves a pixel grid) are refused in one line when loaded."""

from fpt.trunks.base import Arch

ARCH = Arch(name="auto")
