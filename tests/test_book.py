"""The results book: a report rebuilt from a page's committed files alone equals the report made from the run
folders, and the README's marked tables equal their pages' tables (fpt.study.bundle, fpt.study.book)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from fpt.errors import FPTError

ROOT = Path(__file__).resolve().parents[1]


def _sweep(folder: Path, labels: dict | None = None, task: str = "bit_xor", protocol: str = "all") -> Path:
    """Two variants x two seeds of a bit task, each run with its results.json, metrics.csv and test_examples.npz
    (labelled as the variants are named, or by `labels`)."""
    rng = np.random.default_rng(0)
    for variant, rate in (("fpt", 0.9), ("frozen_random", 0.6)):
        for seed in (0, 1):
            d = folder / (f"variant={variant},seed={seed}" if task == "bit_xor" else f"task={task},variant={variant},seed={seed}")
            d.mkdir(parents=True)
            right = (rng.random(200) < rate).astype(float)
            np.savez(d / "test_examples.npz", values=right, metric="acc")
            (d / "metrics.csv").write_text("step,train/loss,val/acc\n10,0.9,\n20,0.5,0.55\n30,0.3,\n40,0.2,%.3f\n" % rate)
            (d / "results.json").write_text(json.dumps({
                "status": "ok", "task": task, "model": "fpt", "seed": seed, "lr": 1e-3, "val/acc": rate,
                "test/acc": float(right.mean()), "val/loss": 0.3, "wall_seconds": 30.0, "steps": 40, "params_used": 1000,
                "improving_at_end": variant == "frozen_random", "baseline/ref_acc": 0.7, "label": (labels or {}).get(variant, variant),
                "overrides": {"variant": variant, "seed": str(seed)}}))
    command = "fpt sweep experiment=tiny" + ("" if task == "bit_xor" else f" task={task}")
    (folder / "sweep.json").write_text(json.dumps({"lr_protocol": protocol, "commands": [command]}))
    return folder


def test_a_page_rebuilt_from_its_files_alone_equals_the_report_of_the_runs(tmp_path):
    from fpt.study.report import report

    runs = _sweep(tmp_path / "runs" / "tiny")
    page = tmp_path / "book" / "tiny"
    first = report(runs, page).read_text()
    assert sorted(p.name for p in page.iterdir()) == ["curves.csv", "examples.npz", "plots", "report.md", "results.csv", "sweep.json"]
    with np.load(page / "examples.npz") as z:
        assert sorted(z.files) == sorted(d.name for d in runs.iterdir() if d.is_dir())
        assert {z[k].dtype for k in z.files} == {np.dtype(np.uint8)} and all(z[k].shape == (200,) for k in z.files)
    assert "/" not in (page / "results.csv").read_text().split("run_dir")[1].split("\n")[1].split(",")[-2]  # names, not paths
    assert (page / "curves.csv").read_text().count("\n") == 1 + 4 * 4  # a header, four steps of four runs
    again = report(page).read_text()  # no run folders: from the files alone
    assert again == first
    assert "Commands: `fpt sweep experiment=tiny` && `fpt report sweeps/tiny`; 4 of 4 runs finished, 2 run-minutes" in first
    assert "| frozen random − FPT |" not in first and "| FPT − frozen random |" not in first  # labels: fpt, frozen_random
    assert "| fpt | " in first and "| *baseline/ref_acc* | 70.0 |" in first and "†" in first
    assert (page / "plots" / "learning_curves.png").stat().st_size > 10_000


def test_a_sweep_that_adds_a_task_joins_its_page_and_a_different_protocol_is_refused(tmp_path):
    from fpt.study.report import report

    page = tmp_path / "book" / "tiny"
    report(_sweep(tmp_path / "runs" / "tiny"), page)
    alone = (page / "report.md").read_text()
    more = _sweep(tmp_path / "runs" / "memory", task="bit_memory")
    text = report(more, page, joined=[page]).read_text()
    assert "| variant | bit_xor (acc % ↑) | bit_memory (acc % ↑) |" in text and text.startswith("# Sweep report: tiny\n")
    assert "8 of 8 runs finished" in text and "`fpt sweep experiment=tiny task=bit_memory`" in text
    assert json.loads((page / "sweep.json").read_text())["commands"] == ["fpt sweep experiment=tiny",
                                                                          "fpt sweep experiment=tiny task=bit_memory"]
    with np.load(page / "examples.npz") as z:
        assert len(z.files) == 8
    assert report(page).read_text() == text  # the joined page rebuilds from its own files
    assert report(page, joined=[page]).read_text() == text  # joining a page to itself adds nothing
    assert alone != text
    with pytest.raises(FPTError, match="chose learning rates differently"):
        report(_sweep(tmp_path / "runs" / "seed0", task="bit_and", protocol="seed0"), page, joined=[page])


def test_marked_tables_are_filled_from_their_page_and_an_unknown_page_is_refused(tmp_path):
    from fpt.study.book import fill, table
    from fpt.study.report import report

    report(_sweep(tmp_path / "runs" / "tiny", {"fpt": "FPT", "frozen_random": "frozen random"}), tmp_path / "book" / "tiny")
    text = "intro\n<!-- book-table: tiny -->\nold table\n<!-- /book-table -->\nafter\n"
    filled = fill(text, tmp_path / "book")
    assert filled == "intro\n<!-- book-table: tiny -->\n" + table(tmp_path / "book" / "tiny") + "<!-- /book-table -->\nafter\n"
    assert filled.count("| FPT |") == 1 and fill(filled, tmp_path / "book") == filled
    with pytest.raises(FPTError, match="book-table 'nope': no .*results.csv"):
        fill(text.replace("tiny", "nope"), tmp_path / "book")
    ci = fill("<!-- book-intervals: tiny -->\n<!-- /book-intervals -->\n", tmp_path / "book")
    rows = ci.splitlines()
    assert rows[1] == "| comparison | bit_xor |" and rows[3].startswith("| frozen random − FPT | -")
    assert rows[4].startswith("| FPT − frozen random | +") and rows[-1] == "<!-- /book-intervals -->"


def test_the_readmes_result_tables_are_those_of_the_committed_book():
    """README.md and docs/results/index.md show each study's table as its committed results.csv gives it: a table
    edited by hand, or a CSV re-run without `fpt book`, fails here."""
    from fpt.study.book import FILES, fill

    marked = 0
    for name in FILES:
        text = (ROOT / name).read_text()
        marked += len(re.findall(r"<!-- book-(?:table|intervals): ", text))
        assert fill(text, ROOT / "docs" / "results") == text, f"{name}: run `fpt book` (its tables differ from the book)"
    assert marked >= 2  # the README and the book's index each show at least one study's table
