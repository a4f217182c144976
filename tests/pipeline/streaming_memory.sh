#!/usr/bin/env bash
# Streaming proof: quantize a generated multi-GB checkpoint (the "1b" Llama preset, 2.4 GB of
# BF16) under an address-space limit far below its size. The limit covers every mapping, heap and
# thread stack, so the job must hold about one tensor at a time: the largest tensor here is the
# 525 MB embedding (128256 x 2048 BF16), written through unchanged.
#   limit = 900 MiB  <  checkpoint 2.4 GB  (the job needs ~ largest tensor + ~300 MiB of code,
#                                           libraries, thread stacks and malloc arenas)
# Also: Ctrl-C in the middle of that job exits 130 and leaves nothing behind.
# Usage: streaming_memory.sh QUANTFORGE_BINARY. Exit 77 = skipped (no prlimit).
set -euo pipefail
qf=$1
command -v prlimit >/dev/null || { echo "SKIP: prlimit (util-linux) is not installed"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$qf" --threads 2 generate --preset 1b --out "$work/model" >/dev/null
size=$(du -sb "$work/model" | cut -f1)
limit=$((900 * 1024 * 1024))
echo "checkpoint: $size bytes; address-space limit: $limit bytes"
[ "$size" -gt $((2 * limit)) ] || { echo "FAIL: the checkpoint is not much larger than the limit"; exit 1; }

prlimit --as=$limit "$qf" --threads 2 quantize --model "$work/model" --out "$work/q" \
  --recipe W4A16_NVFP4_CFG
[ -f "$work/q/model.safetensors" ] || { echo "FAIL: no output"; exit 1; }

# Less than the largest tensor (the 525 MB embedding): a clean error naming it, nothing left
# behind. (Far lower limits starve OpenBLAS's start-up buffers, which then retries forever: hence
# the timeout, and a limit that still lets the libraries start.)
if timeout 120 prlimit --as=$((400 * 1024 * 1024)) "$qf" quantize --model "$work/model" \
    --out "$work/q2" 2>"$work/err.txt"; then
  echo "FAIL: quantize ran in 400 MiB"; exit 1
fi
grep -q "model.embed_tokens.weight" "$work/err.txt" || { cat "$work/err.txt"; exit 1; }
echo "with 400 MiB: $(head -c 300 "$work/err.txt")"
[ ! -e "$work/q2" ] || { echo "FAIL: a partial output was left behind"; exit 1; }
if ls -A "$work" | grep -q '^\.q2\.tmp'; then echo "FAIL: temporary directory left behind"; exit 1; fi
# Ctrl-C in the middle of the job: exit status 130, nothing left behind.
"$qf" --threads 2 quantize --model "$work/model" --out "$work/q3" 2>"$work/err.txt" &
pid=$!
sleep 1
kill -INT "$pid"
status=0
wait "$pid" || status=$?
echo "after SIGINT: exit $status: $(head -c 200 "$work/err.txt")"
if [ "$status" -eq 0 ]; then
  echo "note: the job finished before the signal arrived; interrupt not exercised"
else
  [ "$status" -eq 130 ] || { echo "FAIL: expected exit 130 after SIGINT"; exit 1; }
  [ ! -e "$work/q3" ] || { echo "FAIL: output left behind after SIGINT"; exit 1; }
  if ls -A "$work" | grep -q '^\.q3\.tmp'; then echo "FAIL: temp dir left after SIGINT"; exit 1; fi
fi
echo "streaming_memory: PASSED"
