#!/usr/bin/env python3
"""Independent checker for quantforge exports (python3 + numpy only).

Reads an original Hugging Face checkpoint and its quantized export the way a loader does
(safetensors by hand: 8-byte little-endian header length, JSON header, raw bytes), then checks:
  - the config: Model Optimizer's hf_quant_config.json and inline quantization_config, or
    compressed-tensors' quantization_config (keys vLLM and compressed-tensors require or allow);
    config.json keeps every original key unchanged;
  - every tensor: unquantized ones byte-identical to the original; quantized modules have the
    names, dtypes and shapes of their layout, and the config declares exactly those modules
    quantized (exclude_modules / ignore / quantized_layers agree with the tensors);
  - dequantized weights match the originals within the format's error bound (derived below).
Exit code 0 when everything passes, 1 otherwise, with a readable report.

Usage: check_export.py ORIGINAL_DIR QUANTIZED_DIR [--verbose] [--updated-weights]

--updated-weights: the weights were updated before rounding (GPTQ propagates each column's error
into the next ones), so a code need not be the nearest to the original value; the per-element
bound is then replaced by a relative RMS error below 0.5, and NVFP4's squared error may reach
4x the max-scaling worst case. Everything else is checked as without it.
"""
import fnmatch
import json
import os
import re
import struct
import sys

import numpy as np

# ---------------------------------------------------------------------------------------------
# Element formats, decoded from their specifications (not from quantforge's code).

# E2M1 (OCP MX v1.0 5.3.3): codes 0..7 are 0, 0.5, 1, 1.5, 2, 3, 4, 6; bit 3 is the sign.
E2M1 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6], np.float64)


def e4m3_table():
    """FP8 E4M3 'fn' (OCP FP8 v1.0): bias 7, no infinities, S.1111.111 is NaN."""
    codes = np.arange(256)
    sign = np.where(codes & 0x80, -1.0, 1.0)
    exp = (codes >> 3) & 0xF
    mant = (codes & 0x7).astype(np.float64)
    normal = (1.0 + mant / 8.0) * np.exp2(exp.astype(np.float64) - 7.0)
    subnormal = (mant / 8.0) * 2.0 ** -6
    value = sign * np.where(exp == 0, subnormal, normal)
    value[(exp == 15) & (mant == 7)] = np.nan
    return value


E4M3 = e4m3_table()
DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16,
          "F8_E4M3": np.uint8, "F8_E5M2": np.uint8, "U8": np.uint8, "I8": np.int8,
          "I16": np.int16, "I32": np.int32, "I64": np.int64, "BOOL": np.bool_}

# ---------------------------------------------------------------------------------------------
# safetensors, read by hand.


class Checkpoint:
    def __init__(self, directory):
        self.dir = directory
        self.tensors = {}  # name -> (file, dtype, shape, begin, end)
        index = os.path.join(directory, "model.safetensors.index.json")
        if os.path.exists(index):
            with open(index) as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
        else:
            files = sorted(n for n in os.listdir(directory) if n.endswith(".safetensors"))
        if not files:
            raise ValueError(f"{directory}: no safetensors files")
        for name in files:
            self._read_header(os.path.join(directory, name))

    def _read_header(self, path):
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > size - 8:
                raise ValueError(f"{path}: header length {n} past the end ({size} bytes)")
            header = json.loads(f.read(n))
        base = 8 + n
        spans = []
        for key, meta in header.items():
            if key == "__metadata__":
                continue
            begin, end = meta["data_offsets"]
            count = int(np.prod(meta["shape"], dtype=np.int64)) if meta["shape"] else 1
            width = np.dtype(DTYPES[meta["dtype"]]).itemsize
            if end - begin != count * width or base + end > size:
                raise ValueError(f"{path}: tensor {key}: bad data_offsets {begin}..{end}")
            spans.append((begin, end))
            self.tensors[key] = (path, meta["dtype"], tuple(meta["shape"]), base + begin, base + end)
        spans.sort()
        pos = 0
        for begin, end in spans:
            if begin != pos:
                raise ValueError(f"{path}: hole or overlap at data offset {pos}")
            pos = end

    def raw(self, name):
        """A read-only memory map of the tensor (nothing is read until it is used)."""
        path, dtype, shape, begin, end = self.tensors[name]
        if end == begin:
            return np.zeros(shape, DTYPES[dtype]), dtype, shape
        arr = np.memmap(path, DTYPES[dtype], mode="r", offset=begin, shape=shape or (1,))
        return arr.reshape(shape), dtype, shape

    def bytes(self, name):
        path, _, _, begin, end = self.tensors[name]
        with open(path, "rb") as f:
            f.seek(begin)
            return f.read(end - begin)

    def floats(self, name, rows=None):
        """Any float dtype widened to float64; `rows` (a slice) limits it to some rows."""
        arr, dtype, _ = self.raw(name)
        if rows is not None:
            arr = arr[rows]
        return widen(np.asarray(arr), dtype)


class LazyRows:
    """The original weight, widened to float64 one row slice at a time."""

    def __init__(self, ckpt, name):
        self.ckpt, self.name = ckpt, name
        self.shape = tuple(ckpt.tensors[name][2])

    def __getitem__(self, rows):
        return self.ckpt.floats(self.name, rows)


def widen(arr, dtype):
    if dtype == "BF16":
        return (arr.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    if dtype == "F8_E4M3":
        return E4M3[arr]
    return arr.astype(np.float64)


# Weights are checked in chunks of rows so that the float64 temporaries of a large tensor
# (several per element) stay small.
CHUNK_ELEMENTS = int(os.environ.get("QF_CHECK_CHUNK_ELEMENTS", 1 << 22))


def row_chunks(rows, cols):
    step = max(1, CHUNK_ELEMENTS // max(cols, 1))
    for r0 in range(0, rows, step):
        yield slice(r0, min(rows, r0 + step))


def read_json(path):
    with open(path) as f:
        return json.load(f)


# ---------------------------------------------------------------------------------------------
# Error bounds.
#
# Round to nearest on a grid: |x - q| <= half the grid step at |x|. E2M1's steps are 0.5 below 2,
# 1 in [2, 4] and 2 in [4, 6], so the half-step is 0.25, 0.5 or 1. Beyond the largest value the
# code saturates and the error is |x| - max. In weight units each term is multiplied by the block's
# effective scale S (E4M3 block scale x global scale, or the E8M0 power of two). fp32 rounding of
# the quantizer's own division adds a relative 2^-22 at most; the bounds carry 2^-20 of slack.
SLACK = 1.0 + 2.0 ** -20
UPDATED_WEIGHTS = False  # --updated-weights (GPTQ)


def e2m1_bound(x):
    ax = np.abs(x)
    half = np.where(ax <= 2.0, 0.25, np.where(ax <= 4.0, 0.5, 1.0))
    return half + np.maximum(ax - 6.0, 0.0)


def e4m3_bound(x):
    # E4M3 normals have 3 mantissa bits: half an ulp is 2^-4 of the value's binade, so at most
    # |x| * 2^-4; subnormals have a fixed spacing 2^-9 (half: 2^-10); beyond 448 it saturates.
    ax = np.abs(x)
    return np.maximum(ax * 2.0 ** -4, 2.0 ** -10) + np.maximum(ax - 448.0, 0.0)


class Report:
    def __init__(self, verbose):
        self.failures = []
        self.lines = []
        self.verbose = verbose

    def fail(self, message):
        self.failures.append(message)

    def ok(self, message):
        if self.verbose:
            self.lines.append(message)


class Elementwise:
    """Accumulates |w - deq| against a per-element bound over row chunks."""

    def __init__(self, name, what):
        self.name, self.what = name, what
        self.worst_ratio, self.worst = 0.0, None
        self.err2 = self.ref2 = 0.0

    def add(self, rows, original, deq, bound):
        err = np.abs(original - deq)
        ratio = np.where(bound > 0, err / np.maximum(bound, 1e-300),
                         np.where(err > 0, np.inf, 0.0))
        i = int(np.argmax(ratio))
        if ratio.flat[i] > self.worst_ratio or self.worst is None:
            r, c = np.unravel_index(i, original.shape)
            self.worst_ratio = float(ratio.flat[i])
            self.worst = ((rows.start + r, c), original.flat[i], deq.flat[i], err.flat[i],
                          bound.flat[i])
        self.err2 += float(np.sum(err ** 2))
        self.ref2 += float(np.sum(original ** 2))

    def finish(self, report):
        rel_rms = float(np.sqrt(self.err2 / max(self.ref2, 1e-300)))
        if UPDATED_WEIGHTS:
            if not rel_rms < 0.5:
                report.fail(f"{self.name}: {self.what}: relative RMS error {rel_rms:.4f} of "
                            "updated weights is not below 0.5")
                return False
            report.ok(f"{self.name}: updated weights, rel RMS {rel_rms:.4f}")
            return True
        if self.worst_ratio > SLACK:
            idx, w, d, e, b = self.worst
            report.fail(f"{self.name}: {self.what}: element {idx}: original {w!r} dequantized "
                        f"{d!r} error {e:.3e} exceeds bound {b:.3e}")
            return False
        report.ok(f"{self.name}: {self.what}: max error/bound {self.worst_ratio:.3f}, "
                  f"rel RMS {rel_rms:.4f}")
        return True


def unpack_e2m1(packed):
    codes = np.empty((packed.shape[0], packed.shape[1] * 2), np.uint8)
    codes[:, 0::2] = packed & 0xF  # element 2k: low nibble (both layouts)
    codes[:, 1::2] = packed >> 4
    return codes


def block_view(a, block):
    return a.reshape(a.shape[0], a.shape[1] // block, block)


# ---------------------------------------------------------------------------------------------
# Per-module checks.

def expect(report, ckpt, name, dtype, shape):
    if name not in ckpt.tensors:
        report.fail(f"{name}: missing")
        return False
    _, got_dtype, got_shape, _, _ = ckpt.tensors[name]
    if got_dtype != dtype or tuple(got_shape) != tuple(shape):
        report.fail(f"{name}: expected {dtype} {list(shape)}, found {got_dtype} {list(got_shape)}")
        return False
    return True


def check_nvfp4(report, orig, quant, module, layout, w, has_input):
    out, inp = w.shape
    ct = layout == "compressed-tensors"
    scalar = (1,) if ct else ()
    names = {"packed": f"{module}.weight_packed" if ct else f"{module}.weight",
             "scale": f"{module}.weight_scale",
             "global": f"{module}.weight_global_scale" if ct else f"{module}.weight_scale_2",
             "input": f"{module}.input_global_scale" if ct else f"{module}.input_scale"}
    ok = inp % 16 == 0 or report.fail(f"{module}: in={inp} not a multiple of 16 but quantized")
    ok = expect(report, quant, names["packed"], "U8", (out, inp // 2)) and ok
    ok = expect(report, quant, names["scale"], "F8_E4M3", (out, inp // 16)) and ok
    ok = expect(report, quant, names["global"], "F32", scalar) and ok
    if has_input:
        ok = expect(report, quant, names["input"], "F32", scalar) and ok
        if ok:
            v = float(quant.floats(names["input"]).reshape(-1)[0])
            scale = 1.0 / v if ct else v
            if not (np.isfinite(scale) and scale > 0):
                report.fail(f"{names['input']}: input scale {v} is not positive and finite")
    elif names["input"] in quant.tensors:
        report.fail(f"{names['input']}: present for a weight-only (W4A16) module")
    if not ok:
        return
    g = float(quant.floats(names["global"]).reshape(-1)[0])
    # Model Optimizer stores the multiplier amax/2688, compressed-tensors its reciprocal.
    global_scale = 1.0 / g if ct else g
    if not (np.isfinite(global_scale) and global_scale > 0):
        report.fail(f"{names['global']}: global scale {g} is not positive and finite")
        return
    packed_all, _, _ = quant.raw(names["packed"])
    check = Elementwise(module, "NVFP4 nearest-code bound")
    sse = worst_case = 0.0
    for rows in row_chunks(out, inp):
        w_rows = w[rows]
        block_scale = quant.floats(names["scale"], rows)
        if np.any(~np.isfinite(block_scale)) or np.any(block_scale < 0):
            report.fail(f"{names['scale']}: NaN or negative block scales (Marlin assumes >= 0)")
            return
        s = np.repeat(block_scale * global_scale, 16, axis=1)  # effective scale per element
        deq = E2M1[unpack_e2m1(np.asarray(packed_all[rows]))] * s
        x = np.divide(w_rows, s, out=np.zeros_like(w_rows), where=s > 0)
        check.add(rows, w_rows, deq, e2m1_bound(x) * s)
        # The block scales themselves: whatever the search (max, mse, four_over_six), the squared
        # error must not exceed the worst case of plain max scaling, where S <= amax_b/6 rounded
        # up by E4M3 (relative 2^-4), or the 2^-9 clamp, and every element errs by at most S.
        block_amax = np.max(np.abs(block_view(w_rows, 16)), axis=2)
        s_max = block_amax / 6.0 * (1.0 + 2.0 ** -4) + 2.0 ** -9 * global_scale
        sse += float(np.sum((w_rows - deq) ** 2))
        worst_case += float(np.sum(16.0 * s_max ** 2))
    if not check.finish(report):
        return
    if sse > worst_case * SLACK * (4.0 if UPDATED_WEIGHTS else 1.0):
        report.fail(f"{module}: NVFP4 squared error {sse:.3e} exceeds the max-scaling worst case "
                    f"{worst_case:.3e} (block scales too large?)")


def check_fp8(report, orig, quant, module, layout, w, has_input, per_channel):
    out, inp = w.shape
    ct = layout == "compressed-tensors"
    scalar = (1,) if ct else ()
    scale_shape = ((out, 1) if ct else (out,)) if per_channel else scalar
    ok = expect(report, quant, f"{module}.weight", "F8_E4M3", (out, inp))
    ok = expect(report, quant, f"{module}.weight_scale", "F32", scale_shape) and ok
    if has_input:
        ok = expect(report, quant, f"{module}.input_scale", "F32", scalar) and ok
    if not ok:
        return
    scales = quant.floats(f"{module}.weight_scale").reshape(-1, 1)
    check = Elementwise(module, "FP8 E4M3 rounding bound")
    for rows in row_chunks(out, inp):
        # One scale per tensor, or per output row: broadcast over the row.
        scale = (scales[rows] if per_channel else scales) * np.ones((1, inp))
        w_rows = w[rows]
        deq = quant.floats(f"{module}.weight", rows) * scale
        check.add(rows, w_rows, deq, e4m3_bound(w_rows / scale) * scale)
    check.finish(report)


def check_mx(report, orig, quant, module, w, element):
    out, inp = w.shape
    packed4 = element == "e2m1"
    ok = inp % 32 == 0 or report.fail(f"{module}: in={inp} not a multiple of 32 but quantized")
    ok = expect(report, quant, f"{module}.weight", "U8" if packed4 else "F8_E4M3",
                (out, inp // 2 if packed4 else inp)) and ok
    ok = expect(report, quant, f"{module}.weight_scale", "U8", (out, inp // 32)) and ok
    if not ok:
        return
    raw, _, _ = quant.raw(f"{module}.weight")
    e8m0_all, _, _ = quant.raw(f"{module}.weight_scale")
    check = Elementwise(module, f"MX{'FP4' if packed4 else 'FP8'} bound")
    for rows in row_chunks(out, inp):
        e8m0 = np.asarray(e8m0_all[rows])
        if np.any(e8m0 == 0xFF):
            report.fail(f"{module}.weight_scale: E8M0 NaN code 0xFF")
            return
        s = np.repeat(np.exp2(e8m0.astype(np.float64) - 127.0), 32, axis=1)
        codes = np.asarray(raw[rows])
        w_rows = w[rows]
        if packed4:
            deq, bound = E2M1[unpack_e2m1(codes)] * s, e2m1_bound(w_rows / s) * s
        else:
            deq, bound = E4M3[codes] * s, e4m3_bound(w_rows / s) * s
        check.add(rows, w_rows, deq, bound)
    check.finish(report)


# ---------------------------------------------------------------------------------------------
# Configs.

MODELOPT_ALGOS = {"FP8", "FP8_PER_CHANNEL_PER_TOKEN", "FP8_PB_WO", "NVFP4", "W4A16_NVFP4",
                  "MXFP8", "MXFP4", "MIXED_PRECISION"}
CT_ARGS_KEYS = {"num_bits", "type", "symmetric", "group_size", "strategy", "block_structure",
                "dynamic", "actorder", "scale_dtype", "zp_dtype", "observer", "observer_kwargs"}
CT_SCHEME_KEYS = {"targets", "weights", "input_activations", "output_activations", "format"}


def check_modelopt_config(report, quant_dir, qc):
    hf_path = os.path.join(quant_dir, "hf_quant_config.json")
    if not os.path.exists(hf_path):
        report.fail("hf_quant_config.json: missing (vLLM reads this file first)")
        return None
    hf = read_json(hf_path)
    q = hf.get("quantization")
    if not isinstance(q, dict) or "producer" not in hf:
        report.fail("hf_quant_config.json: needs 'producer' and a 'quantization' object")
        return None
    algo = q.get("quant_algo")
    if algo not in MODELOPT_ALGOS:
        report.fail(f"hf_quant_config.json: quant_algo {algo!r} not one of {sorted(MODELOPT_ALGOS)}")
    if "kv_cache_quant_algo" not in q:
        report.fail("hf_quant_config.json: kv_cache_quant_algo missing")
    if algo in ("NVFP4", "W4A16_NVFP4"):
        for key in ("group_size", "kv_cache_quant_algo", "exclude_modules"):
            if key not in q:
                report.fail(f"hf_quant_config.json: NVFP4 requires '{key}' (vLLM refuses without)")
        if q.get("group_size") != 16:
            report.fail(f"hf_quant_config.json: group_size {q.get('group_size')} != 16")
    if algo == "MIXED_PRECISION":
        if not q.get("quantized_layers"):
            report.fail("hf_quant_config.json: MIXED_PRECISION needs non-empty quantized_layers")
        if "exclude_modules" in q:
            report.fail("hf_quant_config.json: MIXED_PRECISION writes no exclude_modules")
    # The inline form (convert_hf_quant_config_format).
    if qc.get("quant_method") != "modelopt" or qc.get("quant_algo") != algo:
        report.fail(f"config.json quantization_config: quant_method 'modelopt' and quant_algo "
                    f"{algo!r} expected, found {qc.get('quant_method')!r} / {qc.get('quant_algo')!r}")
    if qc.get("ignore") != (q.get("exclude_modules") or []):
        report.fail("config.json quantization_config: 'ignore' differs from exclude_modules")
    kv = q.get("kv_cache_quant_algo")
    if kv == "FP8" and qc.get("kv_cache_scheme") != {"dynamic": False, "num_bits": 8,
                                                     "type": "float"}:
        report.fail("config.json quantization_config: kv_cache_scheme must be FP8 float 8-bit")
    if algo == "MIXED_PRECISION" and qc.get("quantized_layers") != q.get("quantized_layers"):
        report.fail("config.json quantization_config: quantized_layers differs from hf_quant_config")
    return q


def check_ct_config(report, qc):
    for key in ("config_groups", "format", "quant_method", "quantization_status", "ignore"):
        if key not in qc:
            report.fail(f"config.json quantization_config: '{key}' missing")
    if qc.get("quantization_status") != "compressed":
        report.fail("config.json quantization_config: quantization_status must be 'compressed'")
    for gname, group in qc.get("config_groups", {}).items():
        extra = set(group) - CT_SCHEME_KEYS
        if extra:
            report.fail(f"config_groups.{gname}: keys {sorted(extra)} not allowed (extra=forbid)")
        for part in ("weights", "input_activations"):
            args = group.get(part)
            if args is not None and set(args) - CT_ARGS_KEYS:
                report.fail(f"config_groups.{gname}.{part}: keys {sorted(set(args) - CT_ARGS_KEYS)}"
                            " not allowed")
    kv = qc.get("kv_cache_scheme")
    if kv is not None and (kv.get("num_bits") != 8 or kv.get("type") != "float"):
        report.fail("kv_cache_scheme: expected FP8 (num_bits 8, type float)")


def ct_target_matches(target, module):
    if target.startswith("re:"):
        return re.match(target[3:], module) is not None
    return target == module or target == "Linear"


def ct_scheme_of(qc, module):
    """The (algo, has_input) a compressed-tensors config assigns to a module, or None."""
    ignored = any(t == module or (t.startswith("re:") and re.match(t[3:], module))
                  for t in qc.get("ignore") or [])
    if ignored:
        return None
    for group in qc["config_groups"].values():
        if any(ct_target_matches(t, module) for t in group["targets"]):
            w, a = group["weights"], group.get("input_activations")
            if w["num_bits"] == 4 and w["strategy"] == "tensor_group" and w["group_size"] == 16:
                return ("NVFP4" if a else "W4A16_NVFP4", a is not None)
            if w["num_bits"] == 8 and w["strategy"] in ("tensor", "channel"):
                algo = "FP8" if w["strategy"] == "tensor" else "FP8_PER_CHANNEL_PER_TOKEN"
                return (algo, a is not None)
            return ("UNKNOWN", False)
    return None


def modelopt_algo_of(q, module):
    if q["quant_algo"] == "MIXED_PRECISION":
        layer = q["quantized_layers"].get(module)
        return layer["quant_algo"] if layer else None
    if any(fnmatch.fnmatchcase(module, p) for p in q.get("exclude_modules") or []):
        return None
    return q["quant_algo"]


# ---------------------------------------------------------------------------------------------

def main(argv):
    verbose = "--verbose" in argv
    global UPDATED_WEIGHTS
    UPDATED_WEIGHTS = "--updated-weights" in argv
    args = [a for a in argv if not a.startswith("--")]
    if len(args) != 2:
        print(__doc__)
        return 2
    orig_dir, quant_dir = args
    report = Report(verbose)
    orig, quant = Checkpoint(orig_dir), Checkpoint(quant_dir)

    config = read_json(os.path.join(quant_dir, "config.json"))
    original_config = {}
    if os.path.exists(os.path.join(orig_dir, "config.json")):
        original_config = read_json(os.path.join(orig_dir, "config.json"))
    for key, value in original_config.items():
        if key != "quantization_config" and config.get(key) != value:
            report.fail(f"config.json: key '{key}' changed")
    qc = config.get("quantization_config")
    if not isinstance(qc, dict):
        report.fail("config.json: no quantization_config object")
        qc = {}
    layout = qc.get("quant_method")
    q = check_modelopt_config(report, quant_dir, qc) if layout == "modelopt" else None
    if layout == "compressed-tensors":
        check_ct_config(report, qc)
    elif layout != "modelopt":
        report.fail(f"quantization_config.quant_method {layout!r} unknown")
    kv_declared = (q or {}).get("kv_cache_quant_algo") == "FP8" or qc.get("kv_cache_scheme")

    explained = set()
    counts = {}
    for name in sorted(orig.tensors):
        _, dtype, shape, _, _ = orig.tensors[name]
        module = name[: -len(".weight")] if name.endswith(".weight") else None
        quantized = module is not None and f"{module}.weight_scale" in quant.tensors
        declared = None
        if module is not None and len(shape) == 2 and (q is not None or layout == "compressed-tensors"):
            if layout == "modelopt" and q is not None:
                declared = modelopt_algo_of(q, module)
            elif layout == "compressed-tensors":
                scheme = ct_scheme_of(qc, module)
                declared = scheme[0] if scheme else None
            if not quantized and declared is not None and "embed" not in module:
                report.fail(f"{module}: config declares it {declared} but it is not quantized "
                            f"(add it to exclude_modules / ignore)")
            if quantized and declared is None:
                report.fail(f"{module}: quantized but the config excludes it")
        if not quantized:
            if name not in quant.tensors:
                report.fail(f"{name}: missing from the quantized checkpoint")
            elif quant.tensors[name][1:3] != (dtype, shape) or quant.bytes(name) != orig.bytes(name):
                report.fail(f"{name}: unquantized tensor changed")
            else:
                explained.add(name)
                counts["unchanged"] = counts.get("unchanged", 0) + 1
            continue
        w = LazyRows(orig, name)
        scale_dtype = quant.tensors[f"{module}.weight_scale"][1]
        packed_name = f"{module}.weight_packed" if layout == "compressed-tensors" else name
        wdtype = quant.tensors.get(packed_name, (None, None))[1]
        if scale_dtype == "F8_E4M3":
            algo = "NVFP4"
            has_input = (f"{module}.input_scale" in quant.tensors
                         or f"{module}.input_global_scale" in quant.tensors)
            if declared is not None and declared not in ("NVFP4", "W4A16_NVFP4"):
                report.fail(f"{module}: tensors are NVFP4, config says {declared}")
            if declared is not None:
                has_input = declared == "NVFP4"
            check_nvfp4(report, orig, quant, module, layout, w, has_input)
        elif scale_dtype == "U8":
            algo = "MXFP4" if wdtype == "U8" else "MXFP8"
            check_mx(report, orig, quant, module, w, "e2m1" if wdtype == "U8" else "e4m3")
        else:
            per_channel = int(np.prod(quant.tensors[f"{module}.weight_scale"][2] or (1,))) > 1
            algo = "FP8_PER_CHANNEL_PER_TOKEN" if per_channel else "FP8"
            if declared is not None and declared != algo:
                report.fail(f"{module}: tensors are {algo}, config says {declared}")
            check_fp8(report, orig, quant, module, layout, w,
                      f"{module}.input_scale" in quant.tensors, per_channel)
        counts[algo] = counts.get(algo, 0) + 1
        for leaf in ("weight", "weight_packed", "weight_scale", "weight_scale_2",
                     "weight_global_scale", "input_scale", "input_global_scale"):
            explained.add(f"{module}.{leaf}")

    for name in sorted(set(quant.tensors) - explained):
        _, dtype, shape, _, _ = quant.tensors[name]
        if name.endswith((".k_proj.k_scale", ".v_proj.v_scale")):
            scale = float(quant.floats(name).reshape(-1)[0])
            if dtype != "F32" or int(np.prod(shape or (1,))) != 1 or not (scale > 0 and np.isfinite(scale)):
                report.fail(f"{name}: KV scale must be one positive finite F32, found {dtype} {list(shape)} {scale}")
            if not kv_declared:
                report.fail(f"{name}: KV scale written but no KV-cache quantization declared")
            counts["kv scale"] = counts.get("kv scale", 0) + 1
        else:
            report.fail(f"{name}: unexpected tensor in the quantized checkpoint")
    if kv_declared:
        for name in orig.tensors:
            if name.endswith(".k_proj.weight"):
                attn = name[: -len(".k_proj.weight")]
                for leaf in ("k_proj.k_scale", "v_proj.v_scale"):
                    if f"{attn}.{leaf}" not in quant.tensors:
                        report.fail(f"{attn}.{leaf}: missing although KV-cache FP8 is declared")

    for line in report.lines:
        print("  ok  " + line)
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    print(f"check_export: layout {layout}, {len(orig.tensors)} original tensors ({summary})")
    for message in report.failures:
        print("  FAIL " + message)
    print("check_export: " + ("FAILED" if report.failures else "PASSED") +
          f" ({len(report.failures)} problem(s))")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
