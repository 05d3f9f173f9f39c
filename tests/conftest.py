"""Shared fixtures: offline before any import, tiny trunks saved with save_pretrained. Plain helpers: tests/helpers.py."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # must precede any transformers / huggingface_hub import
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")
import tempfile  # noqa: E402

os.environ["FPT_CACHE"] = tempfile.mkdtemp(prefix="fpt-test-cache-")  # feature caches of tests, never ~/.cache

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))

from tests.helpers import LISTOPS_SMALL, save_tiny, save_tiny_trunks, zoo_configs  # noqa: E402


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """{arch: folder} of tiny saved trunks."""
    return save_tiny_trunks(tmp_path_factory.mktemp("trunks"))


@pytest.fixture(scope="session")
def zoo(tmp_path_factory) -> dict[str, Path]:
    """{family: folder} of tiny saved models of 21 architectures."""
    root = tmp_path_factory.mktemp("zoo")
    return {family: save_tiny(root, family) for family in zoo_configs()}


@pytest.fixture(scope="session")
def listops_root(tmp_path_factory) -> Path:
    """A data root holding small generated ListOps files in LRA's format under listops/ (sizes: LISTOPS_SMALL)."""
    from fpt.tasks.listops import ListOps

    out = tmp_path_factory.mktemp("data")
    ListOps.write_data(out, **LISTOPS_SMALL)
    return out


@pytest.fixture
def one_thread():
    """Tiny trunks: a second thread only adds its wake-ups (on a loaded 2-core machine, most of a step's time)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
