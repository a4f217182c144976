#!/usr/bin/env bash
# Layer-by-layer calibration proof: `quantize --calib` on a Llama-3.2-1B-shaped BF16 checkpoint
# (2.47 GB; its F32 weights would take 4.9 GB) under an address-space limit computed from the
# memory formula of docs/ENGINE.md ("Layer-by-layer calibration") plus a fixed allowance:
#   residual stream  4 * N * T * hidden                               (N sequences of T tokens)
# + one layer        4 * P_layer                                      (232 MiB for this shape)
# + one batch        4 * B * (2 * hidden + max(qkv + q, 2 * inter)) + 4 * 64 * T * workers
#                    (B: the tokens of min(N, 4096 / T) sequences; for resident memory the
#                    larger of this and the layer's largest stored tensor, mapped while widened)
# + embedding table  vocab * hidden * 2   (mapped whole while its rows are gathered, then unmapped;
#                                          only the rows touched become resident)
# + fixed            512 MiB of address space (code, libraries, OpenBLAS buffers, thread stacks,
#                                           malloc arenas; 15-55 MiB of it resident)
# A whole-model F32 load cannot fit (4.9 GB of weights alone), nor can widening the embedding
# table (1 GB). The calibration summary line reports the measured peak RSS (VmHWM) and address
# space (VmPeak), which are checked against the formula.
# The checkpoint is written by numpy (a 32 MiB block of N(0, 0.02) values reused at per-tensor
# offsets) because `quantforge generate --preset 1b` takes about a minute on 2 busy cores.
# Usage: [CALIB_SAMPLES=N CALIB_SEQ_LEN=T] calib_memory.sh QUANTFORGE_BINARY.
# Exit 77 = skipped (no prlimit or numpy).
set -euo pipefail
qf=$1
command -v prlimit >/dev/null || { echo "SKIP: prlimit (util-linux) is not installed"; exit 77; }
py=/usr/bin/python3  # Debian's python3, which has python3-numpy
"$py" -c "import numpy" 2>/dev/null || { echo "SKIP: $py has no numpy (python3-numpy)"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# OpenBLAS 0.3.21 picks its SSE kernels on CPUs whose model it does not know (linear.h).
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
  elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
fi

hidden=2048 inter=8192 layers=16 heads=32 kv_heads=8 head_dim=64 vocab=128256
# N x T: small for CI; bench/RESULTS.md also has CALIB_SAMPLES=16 CALIB_SEQ_LEN=256 (one full
# 4096-token batch).
samples=${CALIB_SAMPLES:-4} seq_len=${CALIB_SEQ_LEN:-64} workers=2
"$py" - "$work" $hidden $inter $layers $heads $kv_heads $head_dim $vocab $samples $seq_len <<'EOF'
import json, os, struct, sys
import numpy as np
work = sys.argv[1]
h, inter, layers, heads, kv, hd, vocab, samples, seq_len = map(int, sys.argv[2:])
os.makedirs(f"{work}/model")
tensors = [("model.embed_tokens.weight", [vocab, h]), ("model.norm.weight", [h])]
for l in range(layers):
    p = f"model.layers.{l}."
    tensors += [(p + "input_layernorm.weight", [h]), (p + "post_attention_layernorm.weight", [h]),
                (p + "self_attn.q_proj.weight", [heads * hd, h]),
                (p + "self_attn.k_proj.weight", [kv * hd, h]),
                (p + "self_attn.v_proj.weight", [kv * hd, h]),
                (p + "self_attn.o_proj.weight", [h, heads * hd]),
                (p + "mlp.gate_proj.weight", [inter, h]), (p + "mlp.up_proj.weight", [inter, h]),
                (p + "mlp.down_proj.weight", [h, inter])]
header, offset = {"__metadata__": {"format": "pt"}}, 0
for name, shape in tensors:
    n = int(np.prod(shape)) * 2
    header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + n]}
    offset += n
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
rng = np.random.default_rng(1)
block = (rng.normal(0, 0.02, 1 << 24).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
with open(f"{work}/model/model.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text)
    for i, (name, shape) in enumerate(tensors):
        n = int(np.prod(shape))
        if name.endswith("norm.weight"):
            np.full(n, 0x3F80, np.uint16).tofile(f)  # 1.0
            continue
        start = (i * 7919) % (1 << 20)
        while n > 0:
            chunk = block[start:start + n]
            chunk.tofile(f)
            n -= len(chunk)
            start = 0
json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": h,
           "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": heads,
           "num_key_value_heads": kv, "head_dim": hd, "vocab_size": vocab,
           "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
           "tie_word_embeddings": True, "torch_dtype": "bfloat16"},
          open(f"{work}/model/config.json", "w"))
with open(f"{work}/calib.jsonl", "w") as f:
    for s in range(samples):
        f.write(json.dumps({"input_ids": rng.integers(0, vocab, seq_len).tolist()}) + "\n")
EOF

mib=$((1024 * 1024))
q=$((heads * head_dim)) kv=$((kv_heads * head_dim))
residual=$((4 * samples * seq_len * hidden))
layer=$((4 * (2 * hidden + (q + 2 * kv) * hidden + hidden * q + 3 * inter * hidden)))
widest=$(( q + 2 * kv + q > 2 * inter ? q + 2 * kv + q : 2 * inter ))
per_batch=$((4096 / seq_len > 1 ? 4096 / seq_len : 1))
batch_tokens=$(((samples < per_batch ? samples : per_batch) * seq_len))
batch=$((4 * batch_tokens * (2 * hidden + widest) + 4 * 64 * seq_len * workers))
table=$((vocab * hidden * 2))
rows=$((samples * seq_len * hidden * 2))
fixed=$((512 * mib))
limit=$((residual + layer + batch + table + fixed))
whole_f32=$((4 * (vocab * hidden + hidden + layers * layer / 4)))
size=$(du -sb "$work/model" | cut -f1)
echo "checkpoint $((size / mib)) MiB; whole-model F32 weights $((whole_f32 / mib)) MiB"
echo "formula: residual $((residual / mib)) + layer $((layer / mib)) + batch $((batch / mib))" \
     "+ table mapping $((table / mib)) + fixed $((fixed / mib)) = limit $((limit / mib)) MiB"
[ "$whole_f32" -gt "$((2 * limit))" ] || { echo "FAIL: the limit would fit the F32 model"; exit 1; }

SECONDS=0
prlimit --as=$limit "$qf" --threads $workers quantize --model "$work/model" --out "$work/q" \
  --recipe NVFP4_DEFAULT_CFG --calib "$work/calib.jsonl" --calib-samples $samples \
  --seq-len $seq_len --no-fsync >"$work/out.txt" 2>"$work/err.txt" || {
  cat "$work/err.txt"; echo "FAIL: quantize --calib did not run in $((limit / mib)) MiB"; exit 1; }
line=$(grep '^calib: ' "$work/err.txt") || { cat "$work/err.txt"; echo "FAIL: no summary"; exit 1; }
echo "$line"
echo "quantize --calib: ${SECONDS} s in all (calibration, then NVFP4 quantization and export)"
"$py" - "$work/q/model.safetensors" <<'EOF' || { echo "FAIL: no input_scale in the output"; exit 1; }
import json, sys
f = open(sys.argv[1], "rb")
names = json.loads(f.read(int.from_bytes(f.read(8), "little")))
sys.exit(0 if sum(k.endswith("input_scale") for k in names) == 16 * 7 else 1)
EOF

# The measured peak resident memory of calibration against the formula's resident terms
# (residual + max(rows touched, layer + max(batch, largest stored tensor))) plus 128 MiB for code,
# libraries and OpenBLAS's buffers.
to_bytes() {  # "276.98 MiB" -> bytes
  case $2 in GiB) m=1073741824 ;; MiB) m=1048576 ;; KiB) m=1024 ;; *) m=1 ;; esac
  awk -v v="$1" -v m="$m" 'BEGIN { printf "%d", v * m }'
}
read -r hwm_v hwm_u < <(echo "$line" | sed -E 's/.*peak RSS ([0-9.]+) ([KMG]?i?B).*/\1 \2/')
hwm=$(to_bytes "$hwm_v" "$hwm_u")
largest=$((2 * inter * hidden))
resident=$((residual + layer + (batch > largest ? batch : largest)))
resident=$((resident > residual + rows ? resident : residual + rows))
echo "peak RSS $((hwm / mib)) MiB vs formula $((resident / mib)) MiB + fixed"
[ "$hwm" -le $((resident + 128 * mib)) ] || { echo "FAIL: peak RSS exceeds the formula"; exit 1; }
[ "$hwm" -ge "$layer" ] || { echo "FAIL: peak RSS below one layer's weights?"; exit 1; }
echo "calib_memory: PASSED"
