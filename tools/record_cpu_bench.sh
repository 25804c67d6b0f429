#!/usr/bin/env bash
# Record the CPU benchmarks the performance page reads (results/perf/bench_cpu*.jsonl).
# Run it on an otherwise idle machine: timings under load mislead. CPU_TAG=name writes
# bench_cpu_<name>*.jsonl instead, so a second kind of CPU keeps the first one's files (every row
# names its CPU in host_cpu; rows recorded before that field existed do not).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
prefix=bench_cpu${CPU_TAG:+_$CPU_TAG}

record() {  # record FILE BENCH-ARGS...: write through a temporary file, so a failed run leaves the old file
  local out=results/perf/$1; shift
  .venv/bin/drnet bench --device cpu "$@" > "$out.tmp" && mv "$out.tmp" "$out"
}

record $prefix.jsonl --profiles cpu --repeats 5
# the default layout on the CPU (train.channels_last="auto": NHWC) against NCHW, every cpu profile
record ${prefix}_profiles_layout.jsonl --profiles cpu --variants fp32 nchw
record ${prefix}_mnist_paper_variants.jsonl --experiments mnist --profiles paper --repeats 3 \
  --variants fp32 bf16 compile nchw adam_fused adam_for_loop plain --loss-iterations 20
record ${prefix}_mnist_paper_scaling.jsonl --experiments mnist --profiles paper \
  --scaling --scaling-batch 16 32 64 --scaling-size 64 128 --breakdown
# every convolution of the MNIST paper iteration timed alone, beside the matmul rate (bench_layers.py)
record ${prefix}_mnist_paper_layers.jsonl --experiments mnist --profiles paper --layers
# The authors' own iteration beside ours (issue 7's side-by-side), when DRNET_PY names a clone of
# https://github.com/edenton/drnet-py: our default (fp32, NHWC on the CPU), our side in their NCHW layout,
if [[ -n "${DRNET_PY:-}" ]]; then
  out=results/perf/${prefix}_authors.jsonl
  authors() { .venv/bin/python tools/time_authors_drnet.py "$DRNET_PY" ${DRNET_PY_SOURCE:+--source "$DRNET_PY_SOURCE"} "$@"; }
  # ... and both sides under glibc's static allocation defaults (train.keep_freed_memory=false)
  { authors && authors --set train.channels_last=false && authors --set train.keep_freed_memory=false; } \
    > "$out.tmp" && mv "$out.tmp" "$out"
fi
echo done
