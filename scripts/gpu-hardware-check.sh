#!/usr/bin/env bash
# Runs llmobs' GPU collection on a machine with an NVIDIA GPU and driver, and saves what it read under
# $OUT (default ./gpu-check): nvidia-smi's view, the `hardware` test and the reading it wrote, NVML call
# latencies, and the node agent's /metrics page with the GPU idle and under a matrix-multiply load.
# Why: CI has no GPU; this is how a GPU reading gets recorded (docs/gpu-and-kubernetes.md, "On hardware").
# Needs: python3 with llmobs' dependencies (PYTHONPATH=src is set here), curl; torch for the load phase.
set -u
OUT=${OUT:-gpu-check}
PY=${PYTHON:-python3}
PORT=${PORT:-9403}
mkdir -p "$OUT"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
nvidia-smi -q >"$OUT/nvidia-smi-q.txt" 2>&1
echo "== hardware test"
LLMOBS_GPU_FIXTURE="$OUT/gpu-reading.json" "$PY" -m pytest -q -p no:cacheprovider -rA tests/sources/gpu/test_gpu_hardware.py 2>&1 \
  | tee "$OUT/hardware-test.txt" | tail -5
echo "== NVML call latency"
"$PY" scripts/nvml_call_latency.py --rounds 30 --json "$OUT/nvml-latency.json" | tee "$OUT/nvml-latency.txt"

echo "== node agent"
"$PY" -c 'from llmobs.cli import main; main()' agent --port "$PORT" --node-name gpu-check-node >"$OUT/agent.log" 2>&1 &
agent=$!
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$PORT/metrics" -o /dev/null && break; sleep 0.5; done
sleep 3
curl -sf "http://127.0.0.1:$PORT/metrics" >"$OUT/agent-metrics-idle.txt" || echo "agent did not answer"
if "$PY" -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
  "$PY" - <<'PY' &
import time, torch
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
end = time.time() + 25
while time.time() < end:
    for _ in range(20):
        a = (a @ a).clamp_(-1, 1)
    torch.cuda.synchronize()
PY
  load=$!
  sleep 15
  curl -sf "http://127.0.0.1:$PORT/metrics" >"$OUT/agent-metrics-load.txt" || echo "agent did not answer under load"
  wait "$load"
else
  echo "no torch with CUDA: load phase skipped"
fi
kill "$agent"; wait "$agent" 2>/dev/null
grep -E '^llmobs_(gpu_(utilization_ratio|power_watts|memory_used_bytes|temperature_celsius)|nvml_up|gpu_process)' \
  "$OUT"/agent-metrics-*.txt | head -40
