"""One Hydra job: a single `fpt train`, or one run of a sweep.

In a sweep a finished run (results.json with status ok) is skipped, and a failed run records its
error in results.json and lets the others go on; a single run fails loudly with exit code 2.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

from omegaconf import DictConfig

from fpt.config import preflight
from fpt.errors import FPTError


def finished(run_dir: Path) -> dict | None:
    """The run's results if it completed, else None."""
    try:
        res = json.loads((run_dir / "results.json").read_text())
    except (OSError, ValueError):
        return None
    return res if res.get("status") == "ok" else None


def run_job(cfg: DictConfig) -> float | None:
    """Train one configuration inside Hydra; returns test accuracy (None if skipped or failed)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    sweep = hc.mode == RunMode.MULTIRUN
    overrides = dict(o.split("=", 1) for o in hc.overrides.task if "=" in o)
    if sweep and (done := finished(run_dir)):
        print(f"skip (finished): {run_dir}  test/acc {done['test/acc']:.4f}")
        return done["test/acc"]
    try:
        preflight(cfg)
        from fpt.train import train

        res = train(cfg, run_dir, extra={"overrides": overrides, "label": cfg.get("label")})
    except Exception as e:  # noqa: BLE001 - in a sweep any failure is recorded, the rest go on
        if not sweep and not isinstance(e, FPTError):
            raise
        _record_failure(run_dir, e, overrides)
        print(f"fpt train: error: {_first_line(e)}", file=sys.stderr)
        if not sweep:
            raise SystemExit(2) from None
        return None
    if not res:  # a DDP rank other than 0: rank 0 reports
        return None
    val = "None" if res["val/acc"] is None else f"{res['val/acc']:.4f}"
    print(f"test/acc {res['test/acc']:.4f}  val/acc {val}  steps {res['steps']}  {res['wall_seconds']:.0f}s  -> {run_dir}/results.json")
    return res["test/acc"]


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text and not isinstance(e, FPTError) else text or type(e).__name__


def _record_failure(run_dir: Path, e: Exception, overrides: dict) -> None:
    from fpt.checkpoint import write_json

    run_dir.mkdir(parents=True, exist_ok=True)
    if not isinstance(e, FPTError):
        (run_dir / "error.log").write_text("".join(traceback.format_exception(e)))
    write_json(run_dir / "results.json", {"status": "failed", "error": _first_line(e), "overrides": overrides})
