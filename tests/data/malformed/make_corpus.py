#!/usr/bin/env python3
"""Writes the malformed safetensors corpus next to this script, and EXPECTED.tsv: one line per
file, "<file>\t<fragment>[\t<fragment>...]", fragments the reader's error must contain. Re-run after editing; the files are
committed so that the unit test (tests/io/malformed_test.cc) and the fuzzer (fuzz/) replay them.
Every file is tiny (< 300 bytes) and is a complete safetensors file except for the one defect
its name says."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def st(header, data=b"", length=None):
    """8-byte little-endian header length (the real one unless `length`), header, data."""
    header = header.encode() if isinstance(header, str) else header
    n = len(header) if length is None else length
    return struct.pack("<Q", n) + header + data


def entry(name, dtype="F32", shape=(1,), offsets=(0, 4)):
    shape_json = ",".join(str(d) for d in shape)
    return f'"{name}":{{"dtype":"{dtype}","shape":[{shape_json}],"data_offsets":[{offsets[0]},{offsets[1]}]}}'


CASES = [
    # (file, bytes, expected message fragment)
    ("short_file.safetensors", b"\x05\x00\x00", "shorter than the 8-byte header length"),
    ("empty_file.safetensors", b"", "file is 0 bytes"),
    ("header_longer_than_file.safetensors", st("{}", length=1000), "exceeds the 2 bytes that follow"),
    ("header_over_cap.safetensors", st("{}", length=200_000_000), "exceeds the cap of 100000000"),
    ("header_length_huge.safetensors", st("{}", length=2**64 - 1), "exceeds the cap"),
    ("not_json.safetensors", st("{not json}"), "not valid UTF-8 JSON"),
    ("invalid_utf8.safetensors", st(b'{"a\xff\xfe":{}}'), "not valid UTF-8 JSON"),
    ("empty_header.safetensors", st(""), "not valid UTF-8 JSON"),
    ("header_is_array.safetensors", st("[1,2]"), "must be a JSON object (found array)"),
    ("entry_not_object.safetensors", st('{"w":5}'), "tensor 'w': byte 9: header entry must be an object"),
    ("missing_dtype.safetensors", st('{"w":{"shape":[1],"data_offsets":[0,4]}}', b"\0" * 4), "lacks key 'dtype'"),
    ("missing_offsets.safetensors", st('{"w":{"dtype":"F32","shape":[1]}}', b"\0" * 4), "lacks key 'data_offsets'"),
    ("extra_key.safetensors", st('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"foo":1}}', b"\0" * 4),
     "unexpected key 'foo'"),
    ("unknown_dtype.safetensors", st("{" + entry("w", dtype="F4") + "}", b"\0" * 4), 'unsupported dtype "F4"'),
    ("dtype_not_string.safetensors", st('{"w":{"dtype":7,"shape":[1],"data_offsets":[0,4]}}', b"\0" * 4),
     "unsupported dtype 7"),
    ("negative_dim.safetensors", st("{" + entry("w", shape=(-1,)) + "}", b"\0" * 4), "non-negative integers"),
    ("float_dim.safetensors", st("{" + entry("w", shape=("1.0",)) + "}", b"\0" * 4), "non-negative integers"),
    ("shape_not_array.safetensors", st('{"w":{"dtype":"F32","shape":1,"data_offsets":[0,4]}}', b"\0" * 4),
     "shape must be an array"),
    ("offsets_decreasing.safetensors", st("{" + entry("w", offsets=(4, 0)) + "}", b"\0" * 4), "non-decreasing"),
    ("offsets_three.safetensors", st('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}', b"\0" * 8),
     "two non-decreasing"),
    ("offsets_negative.safetensors", st("{" + entry("w", offsets=(-4, 0)) + "}", b"\0" * 4), "non-negative integers"),
    ("offsets_past_end.safetensors", st("{" + entry("w", shape=(2,), offsets=(0, 8)) + "}", b"\0" * 4),
     "end past the data section of 4 bytes"),
    ("size_mismatch.safetensors", st("{" + entry("w", shape=(2,), offsets=(0, 4)) + "}", b"\0" * 4),
     "shape [2] x F32 needs 8 bytes but data_offsets [0, 4] span 4"),
    ("shape_overflow.safetensors", st("{" + entry("w", shape=(2**62, 16), offsets=(0, 4)) + "}", b"\0" * 4),
     "overflows 64 bits"),
    ("overlap.safetensors", st("{" + entry("a", shape=(2,), offsets=(0, 8)) + "," +
                               entry("b", shape=(2,), offsets=(4, 12)) + "}", b"\0" * 12),
     ("tensor 'b': byte ", "data_offsets [4, 12] overlap tensor 'a' at [0, 8]")),
    ("hole.safetensors", st("{" + entry("a", offsets=(0, 4)) + "," + entry("b", offsets=(8, 12)) + "}", b"\0" * 12),
     "belong to no tensor: expected data_offsets to start at 4, found 8"),
    ("hole_at_start.safetensors", st("{" + entry("a", offsets=(4, 8)) + "}", b"\0" * 8), "expected data_offsets to start at 0"),
    ("trailing_bytes.safetensors", st("{" + entry("a") + "}", b"\0" * 6), "2 bytes after the last tensor"),
    ("duplicate_name.safetensors", st("{" + entry("a") + "," + entry("a", offsets=(4, 8)) + "}", b"\0" * 8),
     "tensor 'a': byte 8: duplicate tensor name"),
    ("duplicate_key.safetensors", st('{"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}', b"\0" * 4),
     "duplicate key 'dtype'"),
    ("metadata_not_strings.safetensors", st('{"__metadata__":{"format":1}}'), "__metadata__ value of 'format'"),
    ("metadata_not_object.safetensors", st('{"__metadata__":[]}'), "__metadata__ must be an object"),
    ("deep_nesting.safetensors", st("[" * 64 + "]" * 64), "nests deeper"),
    # Found by fuzz/safetensors_header_fuzz: nlohmann throws out_of_range, not parse_error, for a
    # number beyond double range, which escaped the reader as a non-qf::Error.
    ("number_overflow.safetensors", st("{" + entry("w", shape=("2e308",)) + "}", b"\0" * 4),
     "number overflow parsing '2e308'"),
]

# Inputs the fuzzer found, committed verbatim (not written by this script): file, fragments.
FUZZ_FINDS = [
    ("fuzz_crash_c48134c0.safetensors", "number overflow parsing '2e308'"),
]


def main():
    lines = []
    for name, data, expected in CASES:
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(data)
    for name, data, expected in CASES + [(n, None, e) for n, e in FUZZ_FINDS]:
        fragments = expected if isinstance(expected, tuple) else (expected,)
        lines.append(name + "".join("\t" + x for x in fragments) + "\n")
    with open(os.path.join(HERE, "EXPECTED.tsv"), "w") as f:
        f.writelines(lines)


if __name__ == "__main__":
    main()
