#!/usr/bin/env bash
# One command for a GPU machine that has PyTorch but no package registry:
#   bash benchmarks/gpu_check.sh
# Runs the GPU-marked tests (CUDA pipeline, graphs, no per-frame allocation via
# torch.cuda.memory_stats, multi-camera), `rtseg bench` at the issue-5 target (LR-ASPP
# 512x1024 FP16, 1080p frames from memory, batch 1 and 2, graphs on and off), the demo node
# and the engine benchmark on CUDA, and writes what it measured to
# benchmarks/results/gpu-check-<gpu>.txt plus gpu-bench-*.json/md (or to $OUT when set).
# Packages missing there (pyzmq, segmentation-models-pytorch) travel as wheels in .whl/:
# download them on a machine with a registry with
#   pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
#       pyzmq segmentation-models-pytorch
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! $PY -c "import zmq, segmentation_models_pytorch" 2>/dev/null && [ -d .whl ]; then
  $PY -m pip install -q --no-index --no-deps --target /tmp/rtseg-site .whl/*.whl
  export PYTHONPATH="/tmp/rtseg-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
gpu=$($PY -c "import torch; print(torch.cuda.get_device_name(0).replace(' ', '-'))")
dir=${OUT:-benchmarks/results}
mkdir -p "$dir"
out="$dir/gpu-check-$gpu.txt"
{
  echo "# rtseg GPU check on $gpu, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "# command: bash benchmarks/gpu_check.sh"
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  $PY -m pytest -q -m gpu tests 2>&1 | tail -n 15
  echo "## rtseg bench: LR-ASPP 512x1024, FP16 engine (auto: TensorRT if installed, else"
  echo "## AOTInductor), 1080p frames from pinned memory"
  $PY benchmarks/record_bench.py gpu-bench-lraspp-512x1024-$gpu --out "$dir" -- \
      --model demo --device cuda --seconds 10 || echo "FAILED (exit $?)"
  $PY benchmarks/record_bench.py gpu-bench-lraspp-512x1024-b2-$gpu --out "$dir" -- \
      --model demo --device cuda --batch 2 --seconds 10 || echo "FAILED (exit $?)"
  $PY benchmarks/record_bench.py gpu-bench-lraspp-512x1024-nographs-$gpu --out "$dir" -- \
      --model demo --device cuda --seconds 10 --no-cuda-graphs --no-baseline || echo "FAILED (exit $?)"
  $PY benchmarks/record_bench.py gpu-bench-lraspp-512x1024-eager-$gpu --out "$dir" -- \
      --model demo --device cuda --engine torch --seconds 10 --no-baseline || echo "FAILED (exit $?)"
  echo "## demo node on CUDA (also written to $dir/gpu-demo-node.md)"
  $PY benchmarks/node_demo.py --device cuda --out "$dir" || echo "FAILED (exit $?)"
  echo "## engines on CUDA, FP16 (also written to $dir/gpu-engines.md)"
  $PY benchmarks/engines.py --device cuda --models lraspp_mobilenet_v3 \
      --formats eager channels_last onnx aoti tensorrt --out "$dir" || echo "FAILED (exit $?)"
} | tee "$out"
