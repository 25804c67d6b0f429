#!/usr/bin/env bash
# Record on a GPU what only a GPU shows (issue 7): the bench of every experiment's paper profile,
# the GPU options (bf16 autocast, torch.compile, CUDA graphs, NHWC, strict fp32 convolutions, cuDNN
# autotuning) with their speedups and loss checks, short paper-profile MNIST and KTH training runs
# with their measurements, and the MNIST paper iteration's scaling with batch and image size with a profiler
# breakdown; with DRNET_PY set to a clone of edenton/drnet-py, the authors' own iteration beside ours.
#
#   tools/record_gpu_bench.sh [bench] [mnist_run] [kth_run] [variants] [scaling] [authors]
#                                   (no argument: the first five, and authors when DRNET_PY is set)
#
# Writes results/perf/bench_cuda_<gpu>.jsonl, bench_cuda_<gpu>_variants.jsonl,
# bench_cuda_<gpu>_mnist_paper_scaling.jsonl, bench_cuda_<gpu>_authors.jsonl and
# bench_cuda_<gpu>_authors_strict_fp32.jsonl, and results/paper/mnist_cuda<N>_seed0.json and
# kth_cuda<N>_seed0.json (<gpu>: the device's name, e.g. h200). Settings from the environment: PY (the
# Python that holds torch and drnet_lib; default .venv/bin/python), PERF_DIR (default results/perf),
# RESULTS_DIR (default results), CHECKPOINT_DIR (default checkpoints), MNIST_ITERATIONS (default
# 500) and KTH_ITERATIONS (default 300).
# Each file is written through a temporary one: a step that fails leaves its rows so far in
# <file>.partial and the earlier file untouched. Run it on an otherwise idle GPU.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PY:-.venv/bin/python}
PERF_DIR=${PERF_DIR:-results/perf}
RESULTS_DIR=${RESULTS_DIR:-results}
MNIST_ITERATIONS=${MNIST_ITERATIONS:-500}   # replaces mnist_cuda500, recorded before --record measured MNIST
KTH_ITERATIONS=${KTH_ITERATIONS:-300}
mkdir -p "$PERF_DIR"
drnet() { "$PY" -m drnet_lib.cli "$@"; }

# "NVIDIA H200" -> h200, "NVIDIA H100 80GB HBM3" -> h100
gpu=$("$PY" -c 'import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"record_gpu_bench.sh: this PyTorch ({torch.__version__}) sees no CUDA device; run it on a GPU machine")
print(torch.cuda.get_device_name(0).split()[1].lower())') || exit 1

record() {  # record FILE BENCH-ARGS...
  local out=$PERF_DIR/$1; shift
  if drnet bench --device cuda "$@" > "$out.tmp"; then
    mv "$out.tmp" "$out"
  else
    echo "bench $* failed; its rows so far are in $out.partial" >&2
    mv "$out.tmp" "$out.partial"
    return 1
  fi
}

authors() {  # authors FILE [--set ...]: three runs of tools/time_authors_drnet.py, one row each
  local out=$PERF_DIR/$1; shift
  : > "$out.tmp"
  for _ in 1 2 3; do
    "$PY" tools/time_authors_drnet.py "$DRNET_PY" --device cuda --rounds 5 --block 20 \
      ${DRNET_PY_SOURCE:+--source "$DRNET_PY_SOURCE"} "$@" >> "$out.tmp" || { mv "$out.tmp" "$out.partial"; return 1; }
  done
  mv "$out.tmp" "$out"
}

paper_run() {  # paper_run EXPERIMENT ITERATIONS: a few hundred paper-profile iterations, recorded
  drnet train --experiment "$1" --profile paper --device cuda --record "cuda$2" \
    --results-dir "$RESULTS_DIR" --checkpoint-dir "${CHECKPOINT_DIR:-checkpoints}" --no-resume \
    --set "train.iterations=$2" "lstm.iterations=$2"
}

steps=("$@")
[[ ${#steps[@]} -gt 0 ]] || steps=(bench mnist_run kth_run variants scaling ${DRNET_PY:+authors})
status=0
for step in "${steps[@]}"; do
  case $step in
    bench)     # every experiment's paper profile, the default settings (fp32, NCHW on a GPU)
      record "bench_cuda_${gpu}.jsonl" --profiles paper || status=1 ;;
    variants)  # the options a reader turns on knowingly, on the two prediction experiments
      record "bench_cuda_${gpu}_variants.jsonl" --experiments mnist kth --profiles paper \
        --variants fp32 bf16 compile cuda_graphs channels_last strict_fp32 cudnn_benchmark --loss-iterations 50 || status=1 ;;
    mnist_run) # measured as the chapter does (probes, judge, swaps, 500-step rollouts)
      paper_run mnist "$MNIST_ITERATIONS" || status=1 ;;
    kth_run)   # 128 px on the stand-in, measured (classification, prediction, rollouts)
      paper_run kth "$KTH_ITERATIONS" || status=1 ;;
    scaling)   # batch 16/32/64 x 64/128 px, and where one iteration's time goes
      record "bench_cuda_${gpu}_mnist_paper_scaling.jsonl" --experiments mnist --profiles paper \
        --scaling --scaling-batch 16 32 64 --scaling-size 64 128 --breakdown || status=1 ;;
    authors)   # their iteration beside ours, with cuDNN's default (TF32) and in strict fp32 on both sides
      [[ -n ${DRNET_PY:-} ]] || { echo "step authors: set DRNET_PY to a clone of edenton/drnet-py" >&2; exit 2; }
      authors "bench_cuda_${gpu}_authors.jsonl" || status=1
      authors "bench_cuda_${gpu}_authors_strict_fp32.jsonl" --set train.conv_tf32=false || status=1 ;;
    *) echo "unknown step $step: choose bench, mnist_run, kth_run, variants, scaling, authors" >&2; exit 2 ;;
  esac
done
exit $status
