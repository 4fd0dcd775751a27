#!/usr/bin/env bash
# The checks that need a CUDA GPU, as one script for a machine that has one and gets only this
# checkout (no ../shared, no virtual environment: its own PyTorch). Copy MNIST in first:
#   mkdir -p .gpudata && cp -r ../shared/data/mnist .gpudata/   (.gpudata is git-ignored)
# then run it there, with OUT naming a folder for the results:
#   OUT=/tmp/gpu bash bench/gpu_check.sh
# It runs tests/test_cuda.py (skipped on a CPU-only machine) and the training-throughput bench
# on the GPU for every model; BENCH_cuda.md holds the block to copy into BENCHMARKS.md.
set -uo pipefail
OUT=${OUT:?set OUT to a folder for the results}
SECONDS_PER_CASE=${SECONDS_PER_CASE:-15}
export PYTHONPATH=$PWD/src GENFORGE_DATA=${GENFORGE_DATA:-$PWD/.gpudata} GENFORGE_OFFLINE=1 PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT/gpu.txt"
$PY -m pytest tests/test_cuda.py -q -p no:cacheprovider -rs 2>&1 | tee "$OUT/pytest.log"
tests=$?
$PY bench/throughput.py --seconds "$SECONDS_PER_CASE" --device cuda \
    --models vae,dcgan,beta-vae,cvae,wgan-gp,sngan,cgan,ref-vae,ref-dcgan \
    --out /tmp/throughput-cuda --write-md "$OUT/BENCH_cuda.md" 2>&1 | tee "$OUT/throughput.log"
bench=$?
cp /tmp/throughput-cuda/throughput.json /tmp/throughput-cuda/throughput_losses.png "$OUT/" 2>/dev/null
echo "tests exit $tests, throughput exit $bench"
exit $(( tests || bench ))
