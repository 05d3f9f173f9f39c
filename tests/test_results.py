"""results.json through one typed record (fpt.run.results.Results): the same file as before, read and written back."""

import json
from pathlib import Path

from fpt.run.results import Results

OLD = Path(__file__).parent / "data" / "results_ok.json"  # written by `fpt train` before Results existed


def test_a_results_json_written_before_reads_typed_and_writes_back_byte_for_byte(tmp_path):
    res = Results.from_json(json.loads(OLD.read_text()))
    assert res.finished and res.metric == "acc" and res.steps == 20 and res.best_step == 10
    assert res.score("test") == res.scores["test/acc"] == 0.5132812261581421
    assert res.score("val") == res.scores["val/acc"] and "test/loss" in res.scores
    assert res.overrides["trainer.max_steps"] == "20" and res.label is None and res.other == {}
    res.write(tmp_path)
    assert (tmp_path / "results.json").read_text() == OLD.read_text()  # the same keys, in the same order
    assert Results.read(tmp_path).to_json() == res.to_json() == json.loads(OLD.read_text())


def test_the_record_reads_as_the_mapping_the_file_holds():
    res = Results.from_json(json.loads(OLD.read_text()))
    assert res["test/acc"] == res.scores["test/acc"] and res["steps"] == 20
    assert json.loads(OLD.read_text()) == res and dict(res) == res.to_json()


def test_preempted_and_failed_records_keep_their_few_keys(tmp_path):
    cut = Results(status="preempted", steps=7, task="bit_xor", seed=0, overrides={"seed": "0"}, label=None)
    assert cut.to_json() == {"status": "preempted", "steps": 7, "task": "bit_xor", "seed": 0, "overrides": {"seed": "0"}, "label": None}
    assert list(Results(status="preempted", steps=7, task="t", seed=1).to_json()) == ["status", "steps", "task", "seed"]
    failed = Results(status="failed", error="FPTError: no data", overrides={"task": "x"})
    assert failed.to_json() == {"status": "failed", "error": "FPTError: no data", "overrides": {"task": "x"}}
    assert Results.from_json(failed.to_json()).to_json() == failed.to_json()
    assert Results.read(tmp_path) is None  # no results.json yet
    (tmp_path / "results.json").write_text("{not json")
    assert Results.read(tmp_path) is None


def test_unknown_keys_are_kept_and_written_back():
    """A file from a newer version (or with keys this one does not know) survives a read and a write."""
    data = {**json.loads(OLD.read_text()), "energy_joules": 12.5, "baseline/1nn_acc": 0.61}
    res = Results.from_json(data)
    assert res.other == {"energy_joules": 12.5} and res.scores["baseline/1nn_acc"] == 0.61
    assert res.to_json() == data
    keys = list(res.to_json())
    assert keys.index("truncation") < keys.index("baseline/1nn_acc") < keys.index("steps")  # where train writes baselines
