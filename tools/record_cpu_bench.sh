#!/usr/bin/env bash
# Record the CPU benchmarks the performance page reads (results/perf/bench_cpu*.jsonl).
# Run it on an otherwise idle machine: timings under load mislead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
B=.venv/bin/drnet
OUT=results/perf
$B bench --device cpu --profiles cpu --repeats 5 > $OUT/bench_cpu.jsonl.tmp && mv $OUT/bench_cpu.jsonl.tmp $OUT/bench_cpu.jsonl
$B bench --device cpu --experiments mnist --profiles paper --repeats 3 --variants fp32 bf16 plain --loss-iterations 20 > $OUT/bench_cpu_mnist_paper_variants.jsonl.tmp && mv $OUT/bench_cpu_mnist_paper_variants.jsonl.tmp $OUT/bench_cpu_mnist_paper_variants.jsonl
$B bench --device cpu --experiments mnist --profiles paper --scaling --scaling-batch 16 32 64 --scaling-size 64 128 --breakdown > $OUT/bench_cpu_mnist_paper_scaling.jsonl.tmp && mv $OUT/bench_cpu_mnist_paper_scaling.jsonl.tmp $OUT/bench_cpu_mnist_paper_scaling.jsonl
echo done
