#!/usr/bin/env bash
# End-to-end throughput of `quantforge quantize` (weight-only NVFP4, W4A16_NVFP4_CFG) as a ratio
# to `cp -r` of the same checkpoint, measured in the same run (issue 3 target: >= 50%).
#
# Both read the same input from the page cache (a first untimed cp warms it). cp writes the whole
# checkpoint; quantize reads it (fused q/k/v and gate/up twice: their shared global amax comes first),
# writes about 45% of its size, and fsyncs its shards before the atomic rename. So the like-for-like
# pairs are: quantize --no-fsync against cp, and quantize (fsync, the default) against cp + sync.
# Usage: bench/quantize_vs_cp.sh [BUILD_DIR=build] [PRESET=1b] [REPS=3]
set -euo pipefail
build=${1:-build}
preset=${2:-1b}
reps=${3:-3}
qf="$build/quantforge"
work=$(mktemp -d "${TMPDIR:-/tmp}/qf-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

"$qf" generate --preset "$preset" --out "$work/model" >/dev/null
bytes=$(du -sb "$work/model" | cut -f1)
cp -r "$work/model" "$work/warm" && rm -rf "$work/warm"

now() { date +%s.%N; }
best() { sort -g | head -n 1; }
time_cmd() {  # prints the best wall time of $reps runs of "$@" (output dir removed between runs)
  for _ in $(seq "$reps"); do
    rm -rf "$work/out"
    local t0 t1
    t0=$(now)
    "$@" >/dev/null 2>&1
    t1=$(now)
    echo "$t1 - $t0" | bc -l
  done | best
}

t_cp=$(time_cmd cp -r "$work/model" "$work/out")
t_cp_sync=$(time_cmd bash -c "cp -r '$work/model' '$work/out' && sync")
t_q=$(time_cmd "$qf" quantize --model "$work/model" --out "$work/out" --recipe W4A16_NVFP4_CFG)
t_q1=$(time_cmd "$qf" --threads 1 quantize --model "$work/model" --out "$work/out" --recipe W4A16_NVFP4_CFG)
t_qn=$(time_cmd "$qf" quantize --model "$work/model" --out "$work/out" --recipe W4A16_NVFP4_CFG --no-fsync)

gbs() { echo "scale=3; $bytes / $1 / 1000000000" | bc -l; }
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "checkpoint: preset $preset, $bytes bytes BF16; best of $reps"
printf '%-34s %8.3f s %7s GB/s\n' "cp -r" "$t_cp" "$(gbs "$t_cp")"
printf '%-34s %8.3f s %7s GB/s\n' "cp -r + sync" "$t_cp_sync" "$(gbs "$t_cp_sync")"
printf '%-34s %8.3f s %7s GB/s\n' "quantize NVFP4 (all threads)" "$t_q" "$(gbs "$t_q")"
printf '%-34s %8.3f s %7s GB/s\n' "quantize NVFP4 (1 thread)" "$t_q1" "$(gbs "$t_q1")"
printf '%-34s %8.3f s %7s GB/s\n' "quantize NVFP4 --no-fsync (all)" "$t_qn" "$(gbs "$t_qn")"
printf 'ratio quantize --no-fsync / cp      : %.2f\n' "$(echo "$t_cp / $t_qn" | bc -l)"
printf 'ratio quantize/cp        (all threads): %.2f\n' "$(echo "$t_cp / $t_q" | bc -l)"
printf 'ratio quantize/(cp+sync) (all threads): %.2f\n' "$(echo "$t_cp_sync / $t_q" | bc -l)"
