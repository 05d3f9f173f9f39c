"""metrics.csv through Lightning's public Logger API.

One row per logging call (`step` first, then the metrics in sorted order), appended as it comes; when a
metric appears that the file has no column for, the file is rewritten once with the wider header. The
header is read from the file itself, so another process that wrote rows (ddp_spawn's workers, a resumed
run) is never overwritten. Unix line endings.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only


def read_rows(path: Path) -> tuple[list[str], list[dict]]:
    """(header, rows) of a metrics.csv; ([], []) when it does not exist."""
    if not path.is_file():
        return [], []
    text = path.read_text()
    return next(csv.reader(io.StringIO(text)), []), list(csv.DictReader(io.StringIO(text)))


def read_header(path: Path) -> list[str]:
    """The column names of a metrics.csv (its first line only); [] when it does not exist."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return next(csv.reader([f.readline()]), [])


def _write(path: Path, header: list[str], rows: list[dict]) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header, restval="", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


class MetricsCSV(Logger):
    """Writes `path` (metrics.csv); `keep_before=STEP` keeps the rows logged before STEP (a resumed run), else a
    fresh run starts the file anew."""

    def __init__(self, path: str | Path, keep_before: int | None = None):
        super().__init__()
        self.path = Path(path)
        self._start(keep_before)

    @rank_zero_only
    def _start(self, keep_before: int | None) -> None:
        header, rows = read_rows(self.path)
        if keep_before is None:
            self.path.unlink(missing_ok=True)
        elif rows:
            _write(self.path, header, [r for r in rows if r.get("step") and int(r["step"]) < keep_before])

    @property
    def name(self) -> str:
        return "metrics"

    @property
    def version(self) -> str:
        return ""

    @property
    def root_dir(self) -> str:
        return str(self.path.parent)

    @rank_zero_only
    def log_hyperparams(self, params, *args, **kwargs) -> None:
        """The resolved config is config.yaml in the run directory: nothing to add here."""

    @rank_zero_only
    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        row = {"step": "" if step is None else int(step)}
        row.update({k: float(v) for k, v in sorted(metrics.items())})
        header = read_header(self.path)
        new = [k for k in row if k not in header]
        if not header or new:
            _, old = read_rows(self.path)
            header = ["step", *sorted((set(header) | set(row)) - {"step"})]
            _write(self.path, header, [*old, row])
            return
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=header, restval="", lineterminator="\n").writerow(row)
