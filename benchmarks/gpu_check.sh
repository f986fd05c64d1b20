#!/usr/bin/env bash
# One command for a GPU machine that has PyTorch but no package registry:
#   bash benchmarks/gpu_check.sh
# Runs the GPU-marked tests and the demo node on CUDA, and writes what it measured to
# benchmarks/results/gpu-check-<gpu>.txt (or $OUT when set).
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
  $PY -m pytest -q -m gpu tests 2>&1 | tail -n 5
  echo "## demo node on CUDA (also written to $dir/gpu-demo-node.md)"
  $PY benchmarks/node_demo.py --device cuda --out "$dir"
  echo "## engines on CUDA, FP16 (also written to $dir/gpu-engines.md)"
  $PY benchmarks/engines.py --device cuda --models lraspp_mobilenet_v3 \
      --formats eager channels_last onnx aoti tensorrt --out "$dir"
} | tee "$out"
