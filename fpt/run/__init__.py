"""One run: preflight, the Hydra launch and job, train / evaluate / restore, the LightningModule, callbacks,
checkpoints and resume, the run lock, the metrics log, precision, objectives and the feature cache."""
