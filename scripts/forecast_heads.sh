#!/usr/bin/env bash
# The forecasting heads side by side (task.readout=flatten: One Fits All's Linear(patches x hidden, horizon); mean:
# the patch tokens averaged first), MiniLM (the default trunk), seed 0, on CPU:
#   - solar, the series aeon ships (the README's offline demo): 48 steps in, 24 out, patches of 8 every 4, 200 steps;
#   - a synthetic ETTh1 (`fpt data forecast`, the real layout and splits): 96 in, 96 out, patches 16/8, 300 steps,
#     validated once at the end; all 7 channels in every token (task.channel_independent=false), which makes each
#     evaluation 7x cheaper than One Fits All's channel-independent one (2,785 windows, not 19,495), for 2 CPU cores.
# Prints one table: test MSE and MAE on the standardised scale, and each run's wall seconds.
# Usage: scripts/forecast_heads.sh [OUT_DIR (default /tmp/forecast_heads)] [extra overrides for every run]
set -euo pipefail
out="${1:-/tmp/forecast_heads}"
shift || true
export HF_HUB_OFFLINE=1
mkdir -p "$out"
[ -f "$out/ett/ETTh1.csv" ] || fpt data forecast out="$out/ett" name=ETTh1 >/dev/null
solar=(data.name=solar task.seq_len=48 task.horizon=24 task.patch_len=8 task.stride=4 trainer.max_steps=200)
ett=(data.name=ETTh1 data.root="$out/ett" task.seq_len=96 task.horizon=96 task.channel_independent=false
     trainer.max_steps=300 trainer.val_check_interval=300)
common=(task=forecast seed=0 trainer.enable_progress_bar=false trainer.enable_model_summary=false eval.train_acc=false)
for data in solar ett; do
  for head in flatten mean; do
    run="$out/${data}_$head"
    rm -rf "$run"
    if [ "$data" = solar ]; then args=("${solar[@]}"); else args=("${ett[@]}"); fi
    start=$(date +%s.%N)
    fpt train "${common[@]}" "${args[@]}" task.readout="$head" out="$run" "$@" > "$run.log" 2>&1
    python -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$start" "$(date +%s.%N)" > "$run.seconds"
  done
done
python - "$out" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print(f"{'data':<33} {'head':<8} {'test MSE':>9} {'test MAE':>9} {'wall s':>7} {'trainable':>10}")
for data, what in (("solar", "solar 48 -> 24, 200 steps"), ("ett", "ETTh1 synth. 96 -> 96, 300 steps")):
    for head in ("flatten", "mean"):
        run = out / f"{data}_{head}"
        res = json.loads((run / "results.json").read_text())
        secs = float((out / f"{data}_{head}.seconds").read_text())
        params = f"{res['params_trainable']:,}"
        print(f"{what:<33} {head:<8} {res['test/mse']:>9.3f} {res['test/mae']:>9.3f} {secs:>7.0f} {params:>10}")
EOF
