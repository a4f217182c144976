#!/bin/sh
# End-to-end test of `quantforge autoquant` and `quantforge sweep` on stories260K with tiny
# settings: an infeasible budget fails naming the minimum; --bits 6 writes the recipe and, with
# --out, a MIXED_PRECISION checkpoint; sweep writes its four report files. Skips (77) without
# ../shared.
#   cli_test.sh QUANTFORGE SHARED_DIR
set -u
qf=$1
shared=$2
model=$shared/models/stories260K/hf
tok=$shared/models/stories260K/tok512.bin
text=$shared/data/wikitext-2-test/wiki.test.raw
if [ ! -f "$model/model.safetensors" ] || [ ! -f "$tok" ] || [ ! -f "$text" ]; then
  echo "stories260K or wikitext-2 not found under $shared; skipping"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() {
  echo "FAIL: $*"
  exit 1
}
small="--calib-samples 2 --seq-len 32 --tokenizer $tok"

# An infeasible budget: exit 1, the minimum named, nothing written.
if "$qf" autoquant --model "$model" --calib "$text" $small --bits 4.8 \
    --recipe-out "$work/x.yaml" >"$work/out.txt" 2>"$work/err.txt"; then
  fail "--bits 4.8 should be refused"
fi
grep -q "minimum is 5.3503" "$work/err.txt" || fail "no minimum in: $(cat "$work/err.txt")"
[ ! -e "$work/x.yaml" ] || fail "a recipe was written for an infeasible budget"

# --bits 6 with --out: recipe with its header, then the checkpoint quantized with it.
"$qf" autoquant --model "$model" --calib "$text" $small --bits 6 --recipe-out "$work/auto.yaml" \
  --out "$work/q" >"$work/out.txt" 2>"$work/err.txt" || fail "autoquant: $(cat "$work/err.txt")"
grep -q "^# budget:         6.0000 bits/element" "$work/auto.yaml" || fail "recipe header"
grep -q "^# optimality gap: 0 (proved optimal" "$work/auto.yaml" || fail "recipe gap"
grep -q "quant_algo MIXED_PRECISION" "$work/out.txt" || fail "summary: $(cat "$work/out.txt")"
grep -q "^achieved     5.9[89]" "$work/out.txt" || fail "achieved BPE: $(cat "$work/out.txt")"
[ -f "$work/q/model.safetensors" ] && [ -f "$work/q/hf_quant_config.json" ] ||
  fail "checkpoint missing in $work/q"
grep -q "scored" "$work/err.txt" || fail "no progress on stderr"

# sweep: one feasible and one infeasible budget, the four report files.
"$qf" sweep --model "$model" --calib "$text" --data "$text" $small --bits 4.5,6 \
  --eval-seq-len 64 --max-eval-tokens 256 --report-dir "$work/report" >"$work/out.txt" \
  2>"$work/err.txt" || fail "sweep: $(cat "$work/err.txt")"
for f in report.json report.csv plot.svg report.html recipes/autoquantize_6.00.yaml; do
  [ -s "$work/report/$f" ] || fail "sweep did not write $f"
done
grep -q "infeasible" "$work/out.txt" || fail "sweep table: $(cat "$work/out.txt")"
echo "PASS"
