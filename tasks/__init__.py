"""Tasks: one module per task, each a LightningDataModule declaring a TaskSpec.

Installed as `fpt.tasks` (the folder stays tasks/, as configs/ installs as fpt.configs). The registry is
`configs/task/`: each yaml names its class in `impl: fpt.tasks.module:Class`.
"""
