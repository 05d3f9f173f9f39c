"""The models: `model.kind` -> its builder (build), the FPT wrapper around a trunk (wrapper), the baselines (LSTM,
Linformer, the ablations), freezing, PEFT adapters and input-layer initialisation."""
