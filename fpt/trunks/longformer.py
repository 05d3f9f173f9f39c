"""Longformer (paper 3.14, allenai/longformer-base-4096): 4096 learned positions and sliding-window attention, so
ListOps (2000 tokens) and CIFAR-10 LRA (1024) run uncut. The wrapper pads to the window itself
(fpt/trunks/forward.py). Its global-attention projections are never used (no token attends globally): the probe
finds them and they stay frozen whatever `freeze` says."""

from fpt.trunks.base import Arch

ARCH = Arch(name="longformer", model_class="LongformerModel", forward="longformer")
