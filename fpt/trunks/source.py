"""Where a trunk's weights come from (local dir, a Python package, or a hub id); no torch import.

Kept light so the CLI can check a trunk's source in milliseconds before the heavy imports.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from fpt.errors import FPTError


def resolve_source(cfg) -> tuple[str, bool]:
    """Where the weights live: (local dir or hub id, is_local). Order: path, package, hub id."""
    if cfg.get("path"):
        path = Path(str(cfg.path)).expanduser()
        if not (path / "config.json").is_file():
            raise FPTError(f"trunk.path '{path}' holds no Hugging Face model (no config.json); point it at a save_pretrained folder")
        _check_config(path / "config.json")
        return str(path), True
    if cfg.get("package"):
        try:
            mod = importlib.import_module(str(cfg.package))
        except ImportError:
            pip_name = str(cfg.package).replace("_", "-")
            raise FPTError(f"trunk '{cfg.name}' needs the package {pip_name}: pip install {pip_name}") from None
        return str(mod.get_model_path()), True
    if not cfg.get("name"):
        raise FPTError(f"trunk.arch={cfg.get('arch')} needs trunk.path=DIR (a save_pretrained folder) or trunk.name=HUB_ID")
    return str(cfg.name), False


def _check_config(file: Path) -> None:
    """A config.json that Hugging Face can read names its model_type; anything else fails here, in one line."""
    try:
        data = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FPTError(f"trunk.path: {file} is not a Hugging Face config ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if not isinstance(data, dict) or not data.get("model_type"):
        raise FPTError(f"trunk.path: {file} names no model_type; point trunk.path at a save_pretrained folder")


def require_hub(name: str) -> None:
    """Fail in milliseconds, not after the hub client's retries, when the hub cannot be reached."""
    if _cached(name):
        return
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        raise FPTError(hub_hint(name, False, "HF_HUB_OFFLINE is set and it is not in the local cache"))
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        raise FPTError(hub_hint(name, False, f"no network ({host} cannot be resolved)")) from None


def _cached(name: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:
        return False


def hub_hint(src: str, local: bool, why) -> str:
    why = str(why).strip().splitlines()[0] if str(why).strip() else type(why).__name__
    if local:
        return f"could not load the trunk from '{src}': {why}"
    return (
        f"could not load trunk '{src}' from the Hugging Face hub: {why}. "
        f"Download it where there is a network (huggingface-cli download {src} --local-dir DIR), "
        f"then pass trunk.path=DIR; trunk=minilm works offline"
    )


def check_source(cfg) -> None:
    """Fail fast, before the heavy imports, when a pretrained trunk's weights cannot be reached."""
    init = str(cfg.get("init", "pretrained"))
    if "/" in init or init.endswith(".ckpt"):  # a toolkit run: its own trunk config is checked when loaded
        return
    src, local = resolve_source(cfg)
    if not local and init != "random":
        require_hub(src)
