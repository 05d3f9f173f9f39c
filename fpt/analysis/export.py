"""`fpt export RUN_DIR out=DIR`: a trained run as a plain Hugging Face model plus the task's own layers.

DIR gets the trunk with any PEFT adapters merged into its weights (`save_pretrained`: config.json and
model.safetensors, loadable by `transformers.AutoModel.from_pretrained(DIR)` without fpt or peft), `fpt_layers.safetensors`
beside it (the input and output layers: `input.*`, `output.*`) and `fpt_export.json` saying what the layers expect.
The trunk is written in fp32 whatever precision the run trained in (the run is opened as `fpt analyze` opens it).
"""

from __future__ import annotations

import json
from pathlib import Path

from fpt.errors import FPTError

LAYERS, META = "fpt_layers.safetensors", "fpt_export.json"


def main(args: list[str]) -> int:
    """fpt export RUN_DIR (or run=RUN_DIR) out=DIR."""
    from fpt.config import command_line

    c = command_line("export", args, writes="dir", positional="RUN_DIR")
    values = c.values()
    run = c.positional or values.pop("run", None)
    if values:
        raise FPTError(f"unknown option '{next(iter(values))}'; fpt export takes RUN_DIR (or run=RUN_DIR) and out=DIR")
    if not run:
        raise FPTError("usage: fpt export RUN_DIR out=DIR")
    if not c.out:
        raise FPTError("missing out=DIR: the folder to write the Hugging Face model into")
    from fpt.analysis import checkpoint_of

    checkpoint_of(run)  # a mistyped path fails before the heavy imports
    out = export(run, Path(c.out).expanduser())
    print(f"wrote {out} (transformers.AutoModel.from_pretrained('{out}'); input/output layers in {out / LAYERS})")
    return 0


def export(run: str | Path, out: Path) -> Path:
    """Write the run's merged trunk (save_pretrained), its input/output layers and a description into `out`."""
    import torch
    from safetensors.torch import save_file

    from fpt.models.adapters import merged_trunk
    from fpt.analysis import open_run, require_transformer

    opened = open_run(run)
    model = opened.model
    require_transformer(model, "fpt export")
    with torch.no_grad():
        trunk = merged_trunk(model.trunk)
    out.mkdir(parents=True, exist_ok=True)
    trunk.save_pretrained(out)
    layers = {f"{part}.{k}": v.detach().float().contiguous()
              for part in ("input", "output") for k, v in getattr(model, part).state_dict().items()}
    save_file(layers, str(out / LAYERS))
    (out / META).write_text(json.dumps(describe(opened.cfg, model), indent=2) + "\n")
    return out


def describe(cfg, model) -> dict:
    """What the exported pieces are: the task's token shape, the readout, the trunk's class and the PEFT method merged."""
    spec = model.spec
    return {"task": str(cfg.task.name), "trunk_class": type(model.trunk).__name__,
            "peft": str((cfg.get("peft") or {}).get("method") or "none"),
            "input": "embedding" if spec.vocab_size is not None else "linear",
            "vocab_size": spec.vocab_size, "token_dim": spec.token_dim, "seq_len": spec.seq_len,
            "readout": model.readout, "trunk_input": "inputs_embeds, attention_mask",
            "num_classes": spec.num_classes, "targets_per_position": spec.targets_per_position}
