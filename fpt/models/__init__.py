"""The models: `model.kind` -> its entry and builder (registry, build), the FPT wrapper around a trunk (wrapper), the
baselines (LSTM, Linformer, the ablations), freezing, PEFT adapters and input-layer initialisation.

Importing the package registers every model kind (fpt/models/registry.py) in fpt.config.kinds."""

from fpt.models import registry  # noqa: F401 - registers the model kinds
