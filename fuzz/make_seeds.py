#!/usr/bin/env python3
"""Writes small valid seed inputs for the fuzzers into fuzz/seeds/ (valid files teach libFuzzer
the structure faster than random bytes; the malformed corpus in tests/data/malformed adds the
edge cases)."""
import json
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")


def st(tensors, metadata=None):
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, payload in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


SEEDS = {
    "header_empty.bin": st([]),
    "header_two.bin": st([("a", "F32", [2], b"\0" * 8), ("b", "BF16", [1, 2], b"\1" * 4)], {"format": "pt"}),
    "header_scalars.bin": st([("s", "I64", [], b"\2" * 8), ("e", "U8", [0, 3], b""), ("f", "F8_E4M3", [3], b"abc")]),
    "index_two.json": json.dumps({"metadata": {"total_size": 12}, "weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}).encode(),
}

os.makedirs(HERE, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
