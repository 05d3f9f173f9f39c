"""ViT (paper 3.2: the image-pretrained trunk, google/vit-base-patch16-224-in21k). Task tokens bypass the patch
projection; CLS is prepended and dropped; task token i gets position row 1 + i (fpt/trunks/vision.py, where DeiT,
BEiT and DINOv2 take the same path through trunk=auto).
Groups found from the structure: ln the block and final norms, pos the position table, emb the patch projection
and the CLS token."""

from fpt.trunks.base import Arch

ARCH = Arch(name="vit", model_class="ViTModel", forward="vit")
