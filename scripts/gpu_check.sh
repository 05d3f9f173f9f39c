#!/usr/bin/env bash
# One command that checks the toolkit end to end on a GPU, in under 8 minutes on one GPU:
#   1. fpt bench on GPT-2 small's shape (trunk.init=random: no download) at batch 64 x 1024 tokens in bf16-mixed,
#      fused attention (trunk.attn_dropout=0), fused Adam (FPTModule on CUDA), model.compile=true; MFU against the
#      bf16 matmul peak measured (and checked against float64) in the same run;
#   2. a short bit-XOR training (MiniLM, a few hundred steps);
#   3. a short training on real digits through the MNIST loader (fpt data mnist writes scikit-learn's digits as
#      MNIST IDX files);
# then ONE summary table: step ms, MFU, peak memory, both test accuracies, wall time of each part.
# Without a GPU (or with GPU_CHECK_SMALL=1) it runs the CPU form: batch 2 x 128 tokens, no compile, fewer steps
# (~2-3 minutes on 2 cores), which CI runs (tests/test_bench.py). PYTHON picks the interpreter (default: python);
# GPU_CHECK_DIR keeps the run directories and logs (default: a temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
py="${PYTHON:-python}"
work="${GPU_CHECK_DIR:-$(mktemp -d -t gpu_check.XXXXXX)}"
mkdir -p "$work"
if [[ -z "${GPU_CHECK_SMALL:-}" ]] && "$py" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
  form=gpu; steps=300; every=100
  bench=(bench.batch=64 bench.seq_len=1024 'bench.precisions=[bf16-mixed]' model.compile=true bench.rounds=10 bench.warmup=2)
else
  form=cpu; steps=60; every=30
  bench=(bench.batch=2 bench.seq_len=128 bench.rounds=2 bench.warmup=1 bench.min_run_time=0.05 bench.device=cpu)
fi
train=(trainer.max_steps=$steps trainer.val_check_interval=$every eval.train_examples=500 trainer.enable_progress_bar=false
       trainer.enable_model_summary=false)
[[ $form == cpu ]] && train+=(trainer.accelerator=cpu)
walls=()

part() {  # part NAME LOG COMMAND...: run it, its output to LOG; on failure show LOG's tail and stop
  local name=$1 log=$2 t0 rc=0
  shift 2
  t0=$(date +%s.%N)
  "$@" >"$log" 2>&1 || rc=$?
  walls+=("$name=$("$py" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)")")
  if ((rc)); then
    echo "gpu_check: $name failed (exit $rc); the end of $log:" >&2
    tail -n 25 "$log" >&2
    exit "$rc"
  fi
}

echo "gpu_check: $form form; logs and runs in $work" >&2
part bench "$work/bench.log" "$py" -m fpt.cli bench trunk=gpt2 trunk.init=random task=cifar10 trunk.attn_dropout=0 \
  'bench.variants=[fpt,bare]' bench.out="$work/bench.jsonl" "${bench[@]}"
part xor "$work/xor.log" "$py" -m fpt.cli train task=bit_xor trunk=minilm hydra.run.dir="$work/xor" "${train[@]}"
digits() {  # scikit-learn's digits written as MNIST's IDX files, then trained on through the MNIST loader
  "$py" -m fpt.cli data mnist out="$work/digits" &&
    "$py" -m fpt.cli train task=mnist data.root="$work/digits" trunk=minilm hydra.run.dir="$work/mnist" "${train[@]}"
}
part mnist "$work/mnist.log" digits

"$py" - "$work" "$form" "${walls[@]}" <<'EOF'
import json, sys
from pathlib import Path

work, form, walls = Path(sys.argv[1]), sys.argv[2], dict(w.split("=") for w in sys.argv[3:])
lines = [json.loads(x) for x in (work / "bench.jsonl").read_text().splitlines()]
c = lines[0]["config"]
print(f"gpu_check ({form} form): {c['device']} ({c['device_name']}), torch {c['torch']}; bench: {c['trunk']} ({c['init']}) "
      f"at batch {c['batch']} x {c['seq_len']} tokens, compile={c['compile']}, median of {c['rounds']} rounds")
rows = [("part", "step ms", "MFU", "peak MiB", "test acc", "wall s")]
for i, r in enumerate(lines):
    mfu = "-" if r["mfu"] is None else f"{r['mfu']:.2f} of {r['mfu_peak']}"
    rows.append((f"bench {r['variant']} {r['precision']}", f"{r['step_ms']:.1f}", mfu, f"{r['peak_mem_bytes'] / 2**20:.0f}", "-",
                 walls["bench"] if i == 0 else ""))
for name, task in (("xor", "train bit_xor (MiniLM)"), ("mnist", "train mnist digits (MiniLM)")):
    res = json.loads((work / name / "results.json").read_text())
    rows.append((f"{task}, {res['steps']} steps", f"{1e3 * res['sec_per_step']:.1f}", "-", "-", f"{res['test/acc']:.4f}", walls[name]))
rows.append(("total", "", "", "", "", f"{sum(float(v) for v in walls.values()):.1f}"))
w = [max(len(x) for x in col) for col in zip(*rows)]
for row in rows:
    print("  ".join(x.ljust(n) if j in (0, 2) else x.rjust(n) for j, (x, n) in enumerate(zip(row, w))))
for k in lines[0]["peaks"]:
    if k["peak"]:
        print(f"{k['precision']} peak: {k['kernel']}, {k['flops_per_s']['value'] / 1e12:.2f} TFLOP/s, {k['check']}")
EOF
