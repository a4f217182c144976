#!/usr/bin/env bash
# The issue-3 Nemotron-H recipe (tests/data/recipes/nemotron_h_issue3.yaml) applied end to end to
# a generated Nemotron-H-named checkpoint: every tensor gets exactly the format the recipe implies,
# and the independent numpy checker accepts the export.
# Usage: e2e_nemotron_h.sh QUANTFORGE_BINARY SOURCE_DIR. Exit 77 = skipped.
set -euo pipefail
qf=$1
src=$2
py=/usr/bin/python3
"$py" -c 'import numpy' 2>/dev/null || { echo "SKIP: $py has no numpy"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$qf" generate --arch nemotron-h --preset tiny --out "$work/model" >/dev/null
# The recipe's input and KV quantizers need calibration: refused without --weight-only.
if "$qf" quantize --model "$work/model" --recipe "$src/tests/data/recipes/nemotron_h_issue3.yaml" \
    --out "$work/q" 2>"$work/err.txt"; then
  echo "FAIL: calibration-dependent quantizers were accepted"; exit 1
fi
grep -q -- "--weight-only" "$work/err.txt"
"$qf" quantize --model "$work/model" --recipe "$src/tests/data/recipes/nemotron_h_issue3.yaml" \
  --weight-only --out "$work/q" >/dev/null
"$py" "$src/tests/tools/check_export.py" "$work/model" "$work/q"
"$qf" inspect "$work/q" --json | tail -n 1 | "$py" -c '
import json, re, sys
d = json.load(sys.stdin)
fmt = {t["name"]: t["format"] for t in d["tensors"]}
def expect(pattern, want):
    names = [n for n in fmt if re.fullmatch(pattern, n)]
    assert names, "no tensor matches " + pattern
    bad = [(n, fmt[n]) for n in names if fmt[n] != want]
    assert not bad, (pattern, want, bad[:3])
    print(f"{len(names):3d} x {pattern:70s} {want}")
L = r"backbone\.layers\.\d+\.mixer\."
expect(L + r"experts\.\d+\.(up|down)_proj\.weight", "NVFP4 packed weight")
expect(L + r"shared_experts\.(up|down)_proj\.weight", "FP8 E4M3 weight")
expect(L + r"(in|out)_proj\.weight", "FP8 E4M3 weight")
expect(L + r"[qkvo]_proj\.weight", "BF16")
expect(L + r"gate\.weight", "BF16")
expect(L + r"conv1d\.weight", "BF16")
expect(L + r"(A_log|D|dt_bias)", "BF16")
expect(r"backbone\.embeddings\.weight", "BF16")
expect(r"lm_head\.weight", "BF16")
'
echo "e2e_nemotron_h: PASSED"
