"""Tasks: one module per task, each a LightningDataModule declaring a TaskSpec.

The registry is `configs/task/`: each yaml names its class in `impl: module:Class`.
"""
