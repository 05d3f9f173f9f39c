#!/usr/bin/env bash
# The reference measurements of the issue "Speed and memory, measured", each checked against
# scripts/bench_targets.yaml: GPT-2 small's shape (random init, no download) on CIFAR-10's token shape
# (batch 16 x 64), MiniLM on bit XOR (10 tokens), and GPT-2 small at 1024 tokens with and without
# gradient checkpointing. Every run prints its table and appends one JSON line per variant x precision
# to $1 (default bench.jsonl). Extra arguments go to every run, e.g. scripts/bench.sh bench.jsonl bench.rounds=5
set -euo pipefail
out="${1:-bench.jsonl}"
shift || true
targets="$(cd "$(dirname "$0")" && pwd)/bench_targets.yaml"
export HF_HUB_OFFLINE=1  # both trunks build offline; never wait on the hub
fpt bench trunk=gpt2 trunk.init=random task=cifar10 bench.batch=16 bench.seq_len=64 bench.targets="$targets" bench.out="$out" "$@"
fpt bench trunk=minilm task=bit_xor bench.seq_len=task bench.targets="$targets" bench.out="$out" "$@"
fpt bench trunk=gpt2 trunk.init=random task=cifar10 trunk.attn_dropout=0 bench.batch=2 bench.seq_len=1024 \
  'bench.variants=[fpt,fpt_gc]' bench.rounds=3 bench.targets="$targets" bench.out="$out" "$@"
