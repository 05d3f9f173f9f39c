"""Output-only training on cached trunk features: the trunk runs once, the cache is reused and invalidated."""

import pytest
import torch

from fpt.errors import FPTError
from fpt.run.features import CachedFeatures
from fpt.models.build import FPTModel
from fpt.run.train import build, restore, train
from fpt.checkpoint import load_checkpoint
from tests.helpers import tiny_cfg

# 64 training examples in batches of 16: 4 steps an epoch, 10 epochs
OUT_ONLY = ("variant=output_only", "data.train_size=64", "trainer.max_steps=40", "trainer.val_check_interval=20",
            "task.val_size=128", "task.test_size=128")


@pytest.fixture()
def trunk_calls(monkeypatch):
    """Counts the examples that go through everything before the output layer (input, trunk, readout)."""
    calls = {"examples": 0}
    original = FPTModel.features

    def counted(self, x, mask):
        calls["examples"] += x.shape[0]
        return original(self, x, mask)

    monkeypatch.setattr(FPTModel, "features", counted)
    return calls


def _cfg(tiny, tmp_path, *more):
    return tiny_cfg(tiny, "gpt2", *OUT_ONLY, f"features.dir={tmp_path / 'cache'}", *more)


@pytest.mark.slow
def test_trunk_runs_once_per_example_then_never_again(tiny, tmp_path, trunk_calls):
    res = train(_cfg(tiny, tmp_path), tmp_path / "a")
    assert res["feature_cache"]["hit"] is False
    # one pass over train, val and test (+1: params_used's synthetic probe); 40 training steps add none
    assert trunk_calls["examples"] == 64 + 128 + 128 + 1
    assert len(res["epoch_seconds"]) == 10 and res["steps"] == 40

    trunk_calls["examples"] = 0
    again = train(_cfg(tiny, tmp_path), tmp_path / "b")  # another run of the same config: the cache is read
    assert again["feature_cache"]["hit"] is True and again["feature_cache"]["path"] == res["feature_cache"]["path"]
    assert trunk_calls["examples"] == 1  # params_used's synthetic probe only
    assert again["test/acc"] == res["test/acc"]


def test_cached_features_are_the_models_own(tiny, tmp_path):
    task, lit = build(_cfg(tiny, tmp_path))
    assert isinstance(task, CachedFeatures)
    task.setup("fit")
    r, y = task.sets["val"]
    raw = task.task.val_dataloader()
    batch = next(iter(raw))
    with torch.no_grad():
        want = lit.model.eval().features(batch["x"], batch["mask"])
    n = batch["y"].shape[0]
    assert r.shape == (128, 5, 32)  # (examples, XOR's 5 read positions, hidden)
    torch.testing.assert_close(r[:n], want.float())  # stored as fp32, whatever precision computed them
    assert torch.equal(y[:n], batch["y"])


@pytest.mark.slow
def test_test_accuracy_on_cached_features_equals_the_full_model(tiny, tmp_path):
    from fpt.run.train import make_trainer

    res = train(_cfg(tiny, tmp_path), tmp_path / "run")
    _, task, lit = restore(load_checkpoint(res["best_checkpoint"]), cached=False)  # inputs through the whole model
    assert not isinstance(task, CachedFeatures)
    trainer = make_trainer({"accelerator": "cpu", "devices": 1}, logger=False, enable_checkpointing=False,
                           enable_progress_bar=False, enable_model_summary=False)
    full = trainer.test(lit, datamodule=task, verbose=False)[0]
    assert full["test/acc"] == pytest.approx(res["test/acc"], abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("change", ["trunk.init=random", "task.n_bits=4", "data.train_size=48", "seed=1"])
def test_a_change_to_trunk_task_data_or_seed_gets_a_new_cache(tiny, tmp_path, change):
    base, _ = build(_cfg(tiny, tmp_path))
    other, _ = build(_cfg(tiny, tmp_path, change))
    assert base.path != other.path


def test_a_changed_data_file_gets_a_new_cache(tiny, tmp_path):
    task, _ = build(_cfg(tiny, tmp_path))
    f = tmp_path / "data.bin"
    f.write_bytes(b"a")
    task.task.data_files = lambda: [f]
    before = task.path
    f.write_bytes(b"ab")
    assert task.path != before


def test_cache_applies_only_to_output_only_training_on_a_fixed_set(tiny, tmp_path):
    fpt_task, _ = build(tiny_cfg(tiny, "gpt2", "data.train_size=64"))  # ln, pos, input train: no cache
    assert not isinstance(fpt_task, CachedFeatures)
    stream, _ = build(tiny_cfg(tiny, "gpt2", "variant=output_only"))  # endless stream: no cache under auto
    assert not isinstance(stream, CachedFeatures)
    off, _ = build(_cfg(tiny, tmp_path, "features.cache=false"))
    assert not isinstance(off, CachedFeatures)
    with pytest.raises(FPTError, match="endless stream.*data.train_size"):
        build(tiny_cfg(tiny, "gpt2", "variant=output_only", "features.cache=true"))
    with pytest.raises(FPTError, match="features.cache"):
        build(_cfg(tiny, tmp_path, "features.cache=sometimes"))


def test_a_config_saved_before_features_existed_still_builds(tiny, tmp_path, monkeypatch):
    from omegaconf import OmegaConf

    cfg = _cfg(tiny, tmp_path)
    old = OmegaConf.create({k: v for k, v in OmegaConf.to_container(cfg).items() if k != "features"})
    monkeypatch.setenv("FPT_CACHE", str(tmp_path / "env"))
    task, _ = build(old)
    assert isinstance(task, CachedFeatures) and task.cache_dir == tmp_path / "env" / "features"
