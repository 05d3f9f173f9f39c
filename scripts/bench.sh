#!/usr/bin/env bash
# The reference measurements of the issue "Speed and memory, measured": GPT-2 small's shape (random
# init, no download) on CIFAR-10's token shape, then MiniLM on bit XOR. Each run prints its table and
# appends one JSON line per variant to $1 (default bench.jsonl). Extra arguments go to both runs,
# e.g. scripts/bench.sh bench.jsonl bench.steps=5
set -euo pipefail
out="${1:-bench.jsonl}"
shift || true
export HF_HUB_OFFLINE=1  # both trunks build offline; never wait on the hub
fpt bench trunk=gpt2 trunk.init=random task=cifar10 bench.batch=16 bench.seq_len=64 bench.out="$out" "$@"
fpt bench trunk=minilm task=bit_xor bench.out="$out" "$@"
