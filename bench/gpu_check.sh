#!/usr/bin/env bash
# The checks that need a CUDA GPU, as one script for a machine that has one and gets only this
# checkout (no ../shared, no virtual environment: its own PyTorch). Copy MNIST in first:
#   mkdir -p .gpudata && cp -r ../shared/data/mnist .gpudata/   (.gpudata is git-ignored)
# then run it there, with OUT naming a folder for the results:
#   OUT=/tmp/gpu bash bench/gpu_check.sh
# It runs tests/test_cuda.py (skipped on a CPU-only machine), the training-throughput bench on the
# GPU for each model in float32 and under bfloat16 autocast (BENCH_cuda.md holds the block for
# BENCHMARKS.md), and times a detector's training there in both precisions (detector.txt).
# Then issue 31's data-parallel lines (BENCH_ddp_cuda.md, the block distributed-cuda): the
# overhead of torchrun with one rank against the plain loop on one GPU, and, where the machine
# has several GPUs, the scaling efficiency of each family at 64x64: img/s with N GPUs / (N x img/s
# of the plain loop on one), with the same batch per GPU. They train on emoji at 64x64 where its
# tarballs are in .gpudata/emoji (cp "$GENFORGE_CACHE"/emoji/*.tgz .gpudata/emoji/), else on MNIST
# made 64x64x3 (--image-size 64 --channels 3: the same tensors, so the same work per image).
# DDP_ONLY=1 runs only those lines (a short device session).
set -uo pipefail
OUT=${OUT:?set OUT to a folder for the results}
SECONDS_PER_CASE=${SECONDS_PER_CASE:-15}
MODELS=${MODELS:-vae,dcgan,beta-vae,cvae,wgan-gp,sngan,cgan,cvae-gan,ref-vae,ref-dcgan}
DETECT_MINUTES=${DETECT_MINUTES:-0.5}
DDP_ONLY=${DDP_ONLY:-0}
DDP_MODELS=${DDP_MODELS:-vae,dcgan,cgan}
DDP_STEPS=${DDP_STEPS:-400}
DDP_LOG_EVERY=${DDP_LOG_EVERY:-25}
DDP_TIMEOUT=${DDP_TIMEOUT:-600}
export PYTHONPATH=$PWD/src GENFORGE_DATA=${GENFORGE_DATA:-$PWD/.gpudata} GENFORGE_OFFLINE=1 PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT/gpu.txt"
tests=0
bench=0
if [ "$DDP_ONLY" != 1 ]; then
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
fi

# --- issue 31: data-parallel training on GPUs --------------------------------------------------
if ls "$GENFORGE_DATA"/emoji/emoji-datasource-*.tgz > /dev/null 2>&1; then
    DDP_DATA="--dataset emoji --image-size 64"
else
    DDP_DATA="--dataset mnist --image-size 64 --channels 3"
fi
GPUS=$(nvidia-smi -L | wc -l)
ddp=0

median() {  # the median img/s of a run's metrics.jsonl, its first window skipped as warm-up (nan: none left)
    $PY - "$1/metrics.jsonl" <<'PYEOF'
import json, statistics, sys
rows = []
for line in open(sys.argv[1]):
    try:
        rows.append(json.loads(line))
    except ValueError:  # a line cut short
        pass
speeds = [row["img_per_s"] for row in rows if "img_per_s" in row][1:]
print(f"{statistics.median(speeds):.0f}" if speeds else "nan")
PYEOF
}

ddp_train() {  # RUN NPROC BATCH MODEL: one measured run; NPROC 0 is the plain loop without torchrun
    local run=$1 nproc=$2 batch=$3 model=$4 launcher
    rm -rf "$run"
    if [ "$nproc" = 0 ]; then
        launcher=("$PY" -m genforge)
    else
        launcher=("$PY" -m torch.distributed.run --standalone --nproc_per_node "$nproc" -m genforge)
    fi
    # no checkpoint or sample grid inside a measured window (train writes both at the end)
    timeout "$DDP_TIMEOUT" "${launcher[@]}" train --model "$model" $DDP_DATA --steps "$DDP_STEPS" --seed 0 \
        --batch-size "$batch" --log-every "$DDP_LOG_EVERY" --device cuda --prior none --no-progress \
        --checkpoint-minutes 1000 --sample-every $((DDP_STEPS + 1)) --out "$run" > "$run.log" 2>&1
    local code=$?
    if [ $code != 0 ]; then  # called as $(...): the caller sees the nan and marks the failure
        echo "$run: exit $code; see $run.log" >&2
        grep -i error "$run.log" | grep -v "error_file\|errors.html" | head -3 >&2  # torchrun ends with a summary
        echo failed
        return
    fi
    median "$run"
}

failed() {  # marks the data-parallel lines failed when a measured value is missing
    for value in "$@"; do
        case "$value" in failed|nan) ddp=1 ;; esac
    done
    return 0
}

ratio() {  # NUM DEN [SCALE]: NUM / (DEN x SCALE) to 2 decimals, or - when either is not a number
    awk -v a="$1" -v b="$2" -v n="${3:-1}" 'BEGIN { if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b == 0) print "-"; else printf "%.2f", a / (b * n) }'
}

rows_overhead=()
rows_scaling=()
for model in ${DDP_MODELS//,/ }; do
    batch=$($PY -c "from genforge.models import model_class; print(model_class('$model').Config().batch_size)")
    plain=$(ddp_train "/tmp/ddp-$model-plain" 0 "$batch" "$model")
    one=$(ddp_train "/tmp/ddp-$model-torchrun1" 1 "$batch" "$model")
    failed "$plain" "$one"
    echo "$model: plain $plain img/s, torchrun x1 $one img/s" | tee -a "$OUT/ddp.txt"
    rows_overhead+=("| $model | $batch | $plain | $one | $(ratio "$one" "$plain") |")
    if [ "$GPUS" -gt 1 ]; then
        many=$(ddp_train "/tmp/ddp-$model-torchrun$GPUS" "$GPUS" "$batch" "$model")
        failed "$many"
        echo "$model: torchrun x$GPUS $many img/s" | tee -a "$OUT/ddp.txt"
        rows_scaling+=("| $model | $batch | $plain | $many | $(ratio "$many" "$plain" "$GPUS") |")
    fi
done

{
    echo "<!-- distributed-cuda:start -->"
    echo "## Data-parallel training on GPUs (torchrun, nccl)"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M') UTC"
    echo "- machine: $GPUS x $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1), $($PY -c 'import torch; print("torch", torch.__version__)')"
    echo "- command: \`DDP_MODELS=$DDP_MODELS DDP_STEPS=$DDP_STEPS bash bench/gpu_check.sh\`"
    echo "- data: \`$DDP_DATA\`; $DDP_STEPS steps per run from scratch, img/s of the whole job from metrics.jsonl every $DDP_LOG_EVERY steps, the first window skipped as warm-up, median of the others"
    echo
    echo "One GPU: \`genforge train --device cuda\` against \`torchrun --standalone --nproc_per_node 1 -m genforge train --device cuda\` (the same batch)."
    echo
    echo "| model | batch | plain img/s | torchrun x1 img/s | torchrun / plain |"
    echo "|---|---:|---:|---:|---:|"
    printf '%s\n' "${rows_overhead[@]}"
    if [ "$GPUS" -gt 1 ]; then
        echo
        echo "$GPUS GPUs: \`torchrun --standalone --nproc_per_node $GPUS\` with the batch per GPU of the one-GPU run (global batch $GPUS x that); efficiency = img/s with $GPUS GPUs / ($GPUS x plain img/s on one)."
        echo
        echo "| model | batch per GPU | 1 GPU img/s | $GPUS GPUs img/s | efficiency |"
        echo "|---|---:|---:|---:|---:|"
        printf '%s\n' "${rows_scaling[@]}"
    else
        echo
        echo "Scaling across GPUs: not measured (this machine has one GPU)."
    fi
    echo "<!-- distributed-cuda:end -->"
} > "$OUT/BENCH_ddp_cuda.md"
cat "$OUT/BENCH_ddp_cuda.md"
echo "tests exit $tests, throughput exit $bench, data-parallel exit $ddp"
exit $(( tests || bench || ddp ))
