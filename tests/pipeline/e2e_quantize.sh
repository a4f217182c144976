#!/usr/bin/env bash
# End-to-end: `quantforge quantize` on the real stories260K checkpoints (F32 and BF16) in both
# export layouts, checked by the independent numpy reader tests/tools/check_export.py; inspect
# --json; identical bytes for 1 and 2 threads; refusals exit non-zero and leave nothing.
# Usage: e2e_quantize.sh QUANTFORGE_BINARY SHARED_DIR SOURCE_DIR. Exit 77 = skipped.
set -euo pipefail
qf=$1
shared=$2
src=$3
checker="$src/tests/tools/check_export.py"
py=/usr/bin/python3  # Debian's python3, which has python3-numpy
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -f "$shared/models/stories260K/hf/model.safetensors" ]; then
  echo "SKIP: $shared/models/stories260K is absent"
  exit 77
fi
if ! "$py" -c 'import numpy' 2>/dev/null; then
  echo "SKIP: $py has no numpy (apt-get install python3-numpy)"
  exit 77
fi

for model in hf hf-bf16; do
  m="$shared/models/stories260K/$model"
  for format in modelopt compressed-tensors; do
    out="$work/$model-$format"
    "$qf" quantize --model "$m" --recipe W4A16_NVFP4_CFG --format "$format" --out "$out" >/dev/null
    "$py" "$checker" "$m" "$out"
  done
  "$qf" quantize --model "$m" --recipe FP8_DEFAULT_CFG --weight-only --out "$work/$model-fp8" >/dev/null
  "$py" "$checker" "$m" "$work/$model-fp8"
done

# inspect --json: the last line is one JSON object with bpe and tensors.
"$qf" inspect "$work/hf-bf16-modelopt" --json | tail -n 1 | "$py" -c '
import json, sys
d = json.load(sys.stdin)
assert 4.5 < d["bpe"] < 16, d["bpe"]
assert all({"name", "format", "shape", "bytes"} <= set(t) for t in d["tensors"])
print("inspect: bpe", d["bpe"])'

# Same bytes whatever the thread count.
m="$shared/models/stories260K/hf-bf16"
"$qf" --threads 1 quantize --model "$m" --recipe NVFP4_FOUR_OVER_SIX_CFG --weight-only --out "$work/t1" >/dev/null
"$qf" --threads 2 quantize --model "$m" --recipe NVFP4_FOUR_OVER_SIX_CFG --weight-only --out "$work/t2" >/dev/null
diff -r "$work/t1" "$work/t2"

# Refusals: non-zero exit, a message naming the problem, nothing left behind.
before=$(ls -A "$work")
if "$qf" quantize --model "$m" --recipe NVFP4_DEFAULT_CFG --out "$work/w4a4" 2>"$work/err.txt"; then
  echo "FAIL: a recipe with calibrated input scales ran without calibration data"; exit 1
fi
grep -q "calibration" "$work/err.txt"
if "$qf" quantize --model "$m" --out "$work/t1" 2>"$work/err.txt"; then
  echo "FAIL: an existing output directory was accepted"; exit 1
fi
grep -q "exists" "$work/err.txt"
rm "$work/err.txt"
[ "$(ls -A "$work")" = "$before" ] || { echo "FAIL: something was left behind"; ls -A "$work"; exit 1; }
echo "e2e_quantize: PASSED"
