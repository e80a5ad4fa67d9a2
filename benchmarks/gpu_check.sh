#!/usr/bin/env bash
# The GPU checks in one go, for a fresh GPU machine (the device tool's H200: Python 3.12 with
# CUDA torch, torchvision, OpenCV, scikit-image, Pillow and pytest already there, no network).
# Well within 15 minutes: the CUDA tests, the library against the notebook's loop on the GPU
# (2,000 portraits), the cost at 500 and 2,000 photos on the GPU, the same on the CPU for
# comparison, then one table.
#
# What its image lacks travels as wheels in .whl/ (ignored by git). Once, here:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: -d .whl facenet-pytorch==2.5.3
# then with the device tool: run(command="benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=900)
# Results land in $OUT (when set) as gpu_check.log.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/plugins${PYTHONPATH:+:$PYTHONPATH}"
log="${OUT:-/tmp}/gpu_check.log"
PY=${PYTHON:-python3}

main() {

if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || return 1
    export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import torch, cv2; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'opencv', cv2.__version__)"

echo "== CUDA tests"
"$PY" -m pytest -q -p no:cacheprovider tests/facecrop_ops/test_cuda.py tests/facecrop_ops/test_mtcnn_fast.py
tests=$?

echo "== GPU: library against the notebook's loop"
"$PY" benchmarks/bench_crop.py --device cuda --photos 2000 --skip-min-face | tee /tmp/gpu.txt
echo "== GPU: cost at 500 and 2,000 photos"
"$PY" benchmarks/bench_crop.py --device cuda --scale 500,2000 | tee /tmp/gpu_scale.txt
echo "== CPU (all cores): library against the notebook's loop, and cost at 500 and 2,000 photos"
"$PY" benchmarks/bench_crop.py --device cpu --photos 500 --skip-min-face | tee /tmp/cpu.txt
"$PY" benchmarks/bench_crop.py --device cpu --scale 500,2000 | tee /tmp/cpu_scale.txt

echo "== Summary"
"$PY" - <<'EOF'
import json
rows = []
for name in ("gpu", "cpu"):
    for part in ("", "_scale"):
        for line in open(f"/tmp/{name}{part}.txt"):
            if line.startswith("RESULT "):
                rows.append(json.loads(line[7:]))
print(f"{'device':<7}{'photos':>8}{'notebook loop/s':>17}{'library/s':>11}{'speed-up':>10}{'boxes identical':>17}{'peak RSS MB':>13}")
for r in rows:
    if "scale" in r:
        for s in r["scale"]:
            print(f"{r['device']:<7}{s['photos']:>8}{'':>17}{s['photos_per_s']:>11.1f}{'':>10}{'':>17}"
                  f"{max(s['task_mb'], s['worker_mb']):>13.0f}")
    else:
        print(f"{r['device']:<7}{r['photos']:>8}{r['reference_per_s']:>17.1f}{r['library_per_s']:>11.1f}"
              f"{r['speedup']:>9.2f}x{r['boxes_identical']:>10}/{r['photos']:<6}")
EOF
return $tests
}

main 2>&1 | tee "$log"
exit "${PIPESTATUS[0]}"
