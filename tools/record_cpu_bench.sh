#!/usr/bin/env bash
# Record the CPU benchmarks the performance page reads (results/perf/bench_cpu*.jsonl).
# Run it on an otherwise idle machine: timings under load mislead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

record() {  # record FILE BENCH-ARGS...: write through a temporary file, so a failed run leaves the old file
  local out=results/perf/$1; shift
  .venv/bin/drnet bench --device cpu "$@" > "$out.tmp" && mv "$out.tmp" "$out"
}

record bench_cpu.jsonl --profiles cpu --repeats 5
record bench_cpu_mnist_paper_variants.jsonl --experiments mnist --profiles paper --repeats 3 \
  --variants fp32 bf16 compile channels_last adam_fused adam_for_loop plain --loss-iterations 20
record bench_cpu_mnist_paper_scaling.jsonl --experiments mnist --profiles paper \
  --scaling --scaling-batch 16 32 64 --scaling-size 64 128 --breakdown
# The authors' own iteration beside ours (issue 7's side-by-side), when DRNET_PY names a clone of
# https://github.com/edenton/drnet-py: fp32 (the same arithmetic) and with channels-last on our side.
if [[ -n "${DRNET_PY:-}" ]]; then
  out=results/perf/bench_cpu_authors.jsonl
  authors() { .venv/bin/python tools/time_authors_drnet.py "$DRNET_PY" ${DRNET_PY_SOURCE:+--source "$DRNET_PY_SOURCE"} "$@"; }
  { authors && authors --set train.channels_last=true; } > "$out.tmp" && mv "$out.tmp" "$out"
fi
echo done
