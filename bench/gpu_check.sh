#!/usr/bin/env bash
# The checks that need a CUDA GPU, as one script for a machine that has one and gets only this
# checkout (no ../shared, no virtual environment: its own PyTorch). Copy MNIST in first:
#   mkdir -p .gpudata && cp -r ../shared/data/mnist .gpudata/   (.gpudata is git-ignored)
# then run it there, with OUT naming a folder for the results:
#   OUT=/tmp/gpu bash bench/gpu_check.sh
# It runs tests/test_cuda.py (skipped on a CPU-only machine), the training-throughput bench on the
# GPU for each model in float32 and under bfloat16 autocast (BENCH_cuda.md holds the block for
# BENCHMARKS.md), and times a detector's training there in both precisions (detector.txt).
set -uo pipefail
OUT=${OUT:?set OUT to a folder for the results}
SECONDS_PER_CASE=${SECONDS_PER_CASE:-15}
MODELS=${MODELS:-vae,dcgan,beta-vae,cvae,wgan-gp,sngan,cgan,cvae-gan,ref-vae,ref-dcgan}
DETECT_MINUTES=${DETECT_MINUTES:-0.5}
export PYTHONPATH=$PWD/src GENFORGE_DATA=${GENFORGE_DATA:-$PWD/.gpudata} GENFORGE_OFFLINE=1 PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT/gpu.txt"
$PY -m pytest tests/test_cuda.py -q -p no:cacheprovider -rs 2>&1 | tee "$OUT/pytest.log"
tests=$?
$PY bench/throughput.py --seconds "$SECONDS_PER_CASE" --device cuda --bf16 --models "$MODELS" \
    --out /tmp/throughput-cuda --write-md "$OUT/BENCH_cuda.md" 2>&1 | tee "$OUT/throughput.log"
bench=$?
# The detector: a small VAE to make fakes of, then the same detector training in each precision.
$PY -m genforge train --model vae --dataset mnist --steps 300 --device cuda --no-progress --out /tmp/det-vae > /dev/null
for precision in fp32 bf16; do
    $PY -m genforge detect train --real mnist:train:0-9999 --fake /tmp/det-vae --minutes "$DETECT_MINUTES" \
        --device cuda --precision "$precision" --no-progress --out "/tmp/det-$precision" | head -3
done 2>&1 | tee "$OUT/detector.txt"
cp /tmp/throughput-cuda/throughput.json /tmp/throughput-cuda/throughput_losses.png "$OUT/" 2>/dev/null
echo "tests exit $tests, throughput exit $bench"
exit $(( tests || bench ))
