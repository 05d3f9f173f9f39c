"""Many runs: sweeps and their report (the paper's tables), the efficiency table, and the benchmark of the training step."""
