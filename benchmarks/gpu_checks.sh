#!/bin/bash
# The GPU checks of issue 26, item 4, as one run for a lent GPU (about 6 minutes on an H200):
#
#     benchmarks/gpu_checks.sh DIR OUTDIR
#
# DIR holds MKG-Y/raw and DB15K/raw (the WildKGC triples); OUTDIR receives
#   cuda_tests.txt       the CUDA tests (fp32, tf32, bf16 and compiled steps beside the CPU's,
#                        evaluation, the model, the row-wise optimiser)
#   step_mkgy.json       the MKG-Y paper-settings step on the GPU in each precision
#   step_db15k.json      the same settings on DB15K's graph (an epoch is 78 such steps)
#   gpu.txt              nvidia-smi and the PyTorch build
# Each part runs even if an earlier one failed; the exit status is the number that failed.
set -u
DIR=${1:?usage: benchmarks/gpu_checks.sh DIR OUTDIR}
OUT=${2:?usage: benchmarks/gpu_checks.sh DIR OUTDIR}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
PY=${PYTHON:-python3}
failed=0
{ nvidia-smi; $PY -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"; } \
    > "$OUT/gpu.txt" 2>&1 || failed=$((failed + 1))
$PY -m pytest -q -p no:cacheprovider \
    tests/training/test_trainer.py::test_cuda_steps_follow_the_cpu_step \
    tests/nn/test_native.py::test_the_model_and_comat_losses_run_on_cuda_and_match_the_cpu \
    tests/evaluation/test_full.py::test_cuda_matches_cpu \
    tests/training/test_optimizers.py::test_rowwise_adagrad_on_cuda_matches_cpu \
    > "$OUT/cuda_tests.txt" 2>&1 || failed=$((failed + 1))
for ds in MKG-Y DB15K; do
    name=$(echo "$ds" | tr 'A-Z' 'a-z' | tr -d -)
    $PY benchmarks/native_step.py --root "$DIR" --dataset "$ds" --device cuda --steps 10 \
        --variants native,tf32,bf16,compiled,bf16-compiled > "$OUT/step_$name.json" \
        2> "$OUT/step_$name.err" || failed=$((failed + 1))
done
exit $failed
