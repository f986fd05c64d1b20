#!/usr/bin/env bash
# One command for a GPU machine that has PyTorch but no package registry:
#   bash benchmarks/gpu_check.sh
# Runs the GPU-marked tests (CUDA pipeline, graphs, no per-frame allocation via
# torch.cuda.memory_stats, multi-camera), `rtseg bench` at the issue-5 target (LR-ASPP
# 512x1024 FP16, 1080p frames from memory, graphs on and off, eager; batch 2), the
# demo node and the engine benchmark on CUDA, and writes what it measured to
# benchmarks/results/gpu-check-<gpu>.txt plus gpu-bench-*.json/md (or to $OUT when set).
# Each step has its own time limit (a hung step costs its limit, not the whole check) and
# its wall time is logged; STEPS="tests bench node engines" picks steps (the default, ~8
# minutes on an H200 with the engine compiles; add "bench2" for batch 2, ~2 minutes more).
# Packages missing there (pyzmq, segmentation-models-pytorch) travel as wheels in .whl/:
# download them on a machine with a registry with (the lent H200 has Python 3.12)
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#       --platform manylinux2014_x86_64 -d .whl pyzmq segmentation-models-pytorch
# Where only a few files may come back (the lent machine: 8), write to a folder and pack it:
#   R=$OUT; OUT=/tmp/res bash benchmarks/gpu_check.sh; tar czf $R/res.tgz -C /tmp res
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
STEPS=${STEPS:-tests bench node engines}
if ! $PY -c "import zmq, segmentation_models_pytorch" 2>/dev/null && [ -d .whl ]; then
  $PY -m pip install -q --no-index --no-deps --target /tmp/rtseg-site .whl/*.whl
  export PYTHONPATH="/tmp/rtseg-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
gpu=$($PY -c "import torch; print(torch.cuda.get_device_name(0).replace(' ', '-'))")
dir=${OUT:-benchmarks/results}
mkdir -p "$dir"
out="$dir/gpu-check-$gpu.txt"

step() {  # step LIMIT_S COMMAND...: run with a time limit, log its exit status and time
  local limit=$1 t0=$SECONDS rc
  shift
  timeout -k 10 "$limit" "$@"
  rc=$?
  echo "## -> exit $rc after $((SECONDS - t0)) s (limit $limit s): $*"
}

bench() {  # bench NAME LIMIT_S [rtseg bench options]
  local name=$1 limit=$2
  shift 2
  step "$limit" $PY benchmarks/record_bench.py "$name-$gpu" --out "$dir" -- "$@"
}

{
  echo "# rtseg GPU check on $gpu, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "# command: bash benchmarks/gpu_check.sh (STEPS=\"$STEPS\")"
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  step 120 $PY -m rtseg doctor  # the machine as rtseg sees it: GPUs, runtimes, auto's pick
  if [[ " $STEPS " == *" tests "* ]]; then
    echo "## GPU-marked tests (files whose packages are absent here fail to collect)"
    step 240 $PY -m pytest -q -rfE -m gpu --continue-on-collection-errors --timeout 120 \
        -p no:cacheprovider tests 2>&1 | grep -v "^ERROR tests/.*ModuleNotFoundError" | tail -n 60
  fi
  if [[ " $STEPS " == *" bench "* ]]; then
    echo "## rtseg bench: LR-ASPP 512x1024, FP16 engine (auto: TensorRT if installed, else"
    echo "## AOTInductor), 1080p frames from pinned memory"
    bench gpu-bench-lraspp-512x1024 240 --model demo --device cuda --seconds 10
  fi
  if [[ " $STEPS " == *" node "* ]]; then
    echo "## demo node on CUDA (also written to $dir/gpu-demo-node.md)"
    step 90 $PY benchmarks/node_demo.py --device cuda --out "$dir"
  fi
  if [[ " $STEPS " == *" bench "* ]]; then  # the engine cached by the first bench step
    bench gpu-bench-lraspp-512x1024-nographs 90 --model demo --device cuda --seconds 10 \
        --no-cuda-graphs --no-baseline
    bench gpu-bench-lraspp-512x1024-eager 60 --model demo --device cuda --engine torch \
        --seconds 10 --no-baseline
  fi
  if [[ " $STEPS " == *" bench2 "* ]]; then  # compiles a batch-2 engine first (~2 min)
    bench gpu-bench-lraspp-512x1024-b2 180 --model demo --device cuda --batch 2 --seconds 10
  fi
  if [[ " $STEPS " == *" engines "* ]]; then
    echo "## engines on CUDA, FP16, 512x1024 (also written to $dir/gpu-engines.md)"
    step 240 $PY benchmarks/engines.py --device cuda --models lraspp_mobilenet_v3 \
        --sizes 512x1024 --formats eager channels_last onnx aoti tensorrt --out "$dir"
  fi
} 2>&1 | tee "$out"
