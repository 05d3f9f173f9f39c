"""What the toolkit knows about a loaded trunk, as plain data (no torch, no callables).

Built once per trunk by `fpt.trunks.discover.describe` (from the hand map or from the model's structure and a
probe forward), carried by the FPT model as `model.trunk_spec`, read by the analysis tools (causal or not, what a
block returns) and printed by `fpt inspect`. Plain data pickles (ddp_spawn), compares and prints.
"""

from __future__ import annotations

from dataclasses import dataclass

POSITION_KINDS = ("learned", "relative", "rotary", "alibi", "none")


@dataclass(frozen=True)
class TrunkSpec:
    """One loaded trunk: where its blocks are, its widths, positions, causality and forward."""

    arch: str  # trunk.arch that built it: gpt2 | bert | t5 (hand maps) | auto | vit | longformer
    family: str  # the config's model_type, e.g. llama, qwen2, bert
    model_class: str  # e.g. LlamaModel
    groups_from: str  # "hand map" or "structure"
    blocks: str  # dotted path of the ModuleList of blocks inside the trunk, e.g. "h", "encoder.layer", "layers"
    n_blocks: int  # blocks the trunk runs
    kept: tuple[int, ...]  # the pretrained indices of those blocks, in order (model.blocks / model.depth)
    total_blocks: int  # blocks of the pretrained model
    hidden: int  # width of the last hidden state (what the readout reads)
    input_width: int  # width of the input embeddings (what the input layer maps to; ELECTRA/ALBERT: < hidden)
    positions: str  # one of POSITION_KINDS
    max_len: int | None  # hard position limit (learned tables), None: no hard limit
    trained_len: int | None  # the context it was pretrained on, where the config says (rotary trunks)
    causal: bool  # a query sees only keys up to itself (found by a probe forward)
    block_output: str  # "tensor" or "tuple": what one block returns (tuple: side outputs, e.g. T5's position bias)
    forward: str  # the body forward by name (fpt.trunks.forward.FORWARDS): embeds | vit (ViT-style image encoders:
    #               ViT, DeiT, BEiT, DINOv2) | longformer
    unused: tuple[str, ...] = ()  # parameters the forward never touches (e.g. Longformer's global-attention
    #                               projections): never trained, whatever the freeze groups say

    def position_text(self) -> str:
        """e.g. 'learned, limit 1024' or 'rotary (no hard limit; pretrained on 2048)'."""
        if self.max_len is not None:
            return f"{self.positions}, limit {self.max_len}"
        trained = f"; pretrained on {self.trained_len}" if self.trained_len else ""
        return f"{self.positions} (no hard limit{trained})"

    def header(self) -> list[str]:
        """The lines `fpt inspect` prints before its table."""
        kept = "all" if self.kept == tuple(range(self.total_blocks)) else f"blocks {list(self.kept)} of {self.total_blocks}"
        return [
            f"# trunk: {self.model_class} (model_type {self.family}, trunk.arch={self.arch}); groups from the {self.groups_from}",
            f"# blocks: {self.blocks} x {self.n_blocks} ({kept}); each returns a {self.block_output}",
            f"# widths: input {self.input_width}, hidden {self.hidden}",
            f"# positions: {self.position_text()}",
            f"# attention: {'causal' if self.causal else 'bidirectional'}"
            + (f"; {len(self.unused)} tensors this forward never uses stay frozen (e.g. {self.unused[0]})" if self.unused else ""),
        ]
