#!/usr/bin/env python3
"""Writes the hand-made tokenizer.json files of the tokenizer tests (tests/tokenizer/).

They are tiny on purpose: every expected encoding in hf_tokenizer_test.cc is derived by hand from
the merges below (see the comments there). Re-run from this directory: python3 make_tokenizers.py
"""
import json


def bytes_to_unicode():
    # GPT-2's table: printable Latin-1 bytes map to themselves, the other 68 to U+0100 + n.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def byte_level(pre_tokenizer, ignore_merges):
    table = bytes_to_unicode()
    vocab = {table[b]: b for b in range(256)}  # id = byte value
    merges = [["t", "'"], ["h", "e"], ["Ġ", "t"], ["Ġ", "c"], ["a", "t"], ["Ġc", "at"],
              ["t", "he"], ["'", "s"], ["3", "4"]]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    return {
        "version": "1.0",
        "added_tokens": [
            {"id": 300, "content": "<|endoftext|>", "special": True},
            {"id": 301, "content": "<|begin_of_text|>", "special": True},
        ],
        "normalizer": None,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [301],
                                                     "tokens": ["<|begin_of_text|>"]}},
        },
        "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": ignore_merges,
                  "vocab": vocab, "merges": merges},
    }


# GPT-2 style: ByteLevel pre-tokenizer with its built-in regex; merges as "a b" strings.
gpt2 = byte_level({"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                   "use_regex": True}, False)
gpt2["model"]["merges"] = [" ".join(m) for m in gpt2["model"]["merges"]]
gpt2["post_processor"] = None

# Llama 3 style: Split with Llama 3's regex, then ByteLevel without regex; merges as pairs.
llama3_regex = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
llama3 = byte_level({"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": llama3_regex}, "behavior": "Isolated", "invert": False},
    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
    True)

# Llama 2 style: SentencePiece BPE as tokenizer.json (Prepend + Replace normalizer, no
# pre-tokenizer, byte fallback, <s> from the template).
sp_vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
for b in range(256):
    sp_vocab["<0x%02X>" % b] = 3 + b
for piece in ["▁", "t", "h", "e", "c", "a"]:
    sp_vocab[piece] = len(sp_vocab)
sp_merges = [["▁", "t"], ["h", "e"], ["▁t", "he"], ["▁", "c"], ["a", "t"], ["▁c", "at"]]
for a, b in sp_merges:
    sp_vocab[a + b] = len(sp_vocab)
llama2 = {
    "version": "1.0",
    "added_tokens": [{"id": 0, "content": "<unk>", "special": True},
                     {"id": 1, "content": "<s>", "special": True},
                     {"id": 2, "content": "</s>", "special": True}],
    "normalizer": {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "▁"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
    "pre_tokenizer": None,
    "post_processor": {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
    },
    "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
              "continuing_subword_prefix": None, "end_of_word_suffix": None, "fuse_unk": True,
              "byte_fallback": True, "vocab": sp_vocab, "merges": sp_merges},
}

for name, data in [("gpt2_bytelevel.json", gpt2), ("llama3_split.json", llama3),
                   ("llama2_sp_bpe.json", llama2)]:
    with open(name, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.write("\n")
