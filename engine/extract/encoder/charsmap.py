"""Rebuild XLM-R's SentencePiece ``precompiled_charsmap`` from the image's single-codepoint map.

The ``tokenizers`` library normalises XLM-R text with a ``Precompiled`` normaliser: a darts-clone
double-array trie from UTF-8 keys to NUL-terminated replacement strings. The E5S1 image keeps only the
4,837 single-codepoint rules of that map. The original also holds ~220k multi-codepoint keys (a
decomposed sequence -> its NFKC composition, e.g. "e" + U+0301 -> "é"). ``tokenizers`` only ever looks
up a whole grapheme shorter than 6 bytes (else one character at a time), so only keys of at most 5
bytes can change a result; we regenerate exactly those: every canonical/compatibility decomposition of
a codepoint, with each component replaced by any codepoint the single map sends to it, kept when
composing changes the result. Checked against the real XLM-R charsmap: the same 2,726 short keys and
values (plus 3 keys spanning two graphemes, which a grapheme lookup can never hit, dropped below).
"""

from __future__ import annotations

import struct
import unicodedata
from collections import defaultdict

_MAX_GRAPHEME_KEY_BYTES = 5  # tokenizers' Precompiled tries whole graphemes only when len(bytes) < 6
_MAX_UNICODE = 0x110000
_BLOCK = 256
_MAX_OFFSET = 1 << 21  # darts-clone units store offsets < 2^21 without the extension bit
_LEAF_BIT = 1 << 31
_HAS_LEAF_BIT = 1 << 8


def _codepoints() -> range:
    return range(1, _MAX_UNICODE)


def _is_scalar(cp: int) -> bool:
    return not 0xD800 <= cp < 0xE000


def _apply(single: dict[str, str], text: str) -> str:
    return "".join(single.get(ch, ch) for ch in text)


def _one_grapheme(text: str) -> bool:
    """A base character followed only by combining marks (the shape a grapheme lookup can match)."""
    return all(unicodedata.category(ch).startswith("M") for ch in text[1:])


def composition_rules(norm_map: dict[int, str]) -> dict[str, str]:
    """Multi-codepoint keys of at most 5 UTF-8 bytes that nmt_nfkc composes, with their replacements."""
    single = {chr(cp): out for cp, out in norm_map.items()}
    preimages: dict[str, set[str]] = defaultdict(set)
    for cp in _codepoints():
        if _is_scalar(cp):
            ch = chr(cp)
            preimages[single.get(ch, ch)].add(ch)
            preimages[ch].add(ch)
    rules: dict[str, str] = {}
    for cp in range(0x80, _MAX_UNICODE):  # ASCII has no decompositions
        if not _is_scalar(cp):
            continue
        ch = chr(cp)
        for form in ("NFD", "NFKD"):
            parts = unicodedata.normalize(form, ch)
            if len(parts) < 2 or len(parts) > _MAX_GRAPHEME_KEY_BYTES:
                continue
            keys = [""]
            for part in parts:  # expand with a byte budget so long decompositions never blow up
                keys = [
                    k + alt
                    for k in keys
                    for alt in preimages[part]
                    if len(k.encode()) + len(alt.encode()) <= _MAX_GRAPHEME_KEY_BYTES
                ]
            for key in keys:
                mapped = _apply(single, key)
                composed = unicodedata.normalize("NFC", mapped)
                if composed != mapped and _one_grapheme(key):
                    rules[key] = composed
    return rules


def _build_trie(keys: dict[bytes, int]) -> list[int]:
    """darts-clone double array (the format spm_precompiled reads) for byte keys -> values."""
    # nested dict trie; None marks a terminal with its value
    root: dict = {}
    for key, value in keys.items():
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[None] = value

    units: list[int] = [0] * _BLOCK
    used = bytearray(_BLOCK)
    used[0] = 1  # the root's own unit
    used_bases: set[int] = set()
    next_block = 0

    def ensure(size: int) -> None:
        while len(units) < size:
            units.extend([0] * _BLOCK)
            used.extend(bytes(_BLOCK))

    def find_base(pos: int, labels: list[int]) -> int:
        nonlocal next_block
        while True:  # skip blocks that are full (every slot used): they can take no node
            ensure((next_block + 1) * _BLOCK)
            if not all(used[next_block * _BLOCK : (next_block + 1) * _BLOCK]):
                break
            next_block += 1
        block = next_block
        while True:
            start = block * _BLOCK
            ensure(start + _BLOCK)
            for low in range(_BLOCK):
                base = start | low
                if base != pos and base not in used_bases and all(not used[base ^ c] for c in labels):
                    return base
            block += 1

    queue: list[tuple[int, dict, int]] = [(0, root, 0)]  # (position, node, label)
    while queue:
        pos, node, label = queue.pop(0)
        children = sorted(k for k in node if k is not None)
        terminal = None in node
        labels = ([0] if terminal else []) + children
        base = find_base(pos, labels)
        offset = pos ^ base
        if not 0 < offset < _MAX_OFFSET:
            raise ValueError(f"double-array offset {offset} out of range")
        used_bases.add(base)
        units[pos] = (offset << 10) | (_HAS_LEAF_BIT if terminal else 0) | label
        if terminal:
            used[base] = 1
            units[base] = _LEAF_BIT | node[None]
        for c in children:
            used[base ^ c] = 1
        queue.extend((base ^ c, node[c], c) for c in children)
    last = max(i for i, u in enumerate(used) if u)
    size = (last // _BLOCK + 1) * _BLOCK  # whole blocks: any XOR probe stays inside the array
    return units[:size]


def build_precompiled_charsmap(norm_map: dict[int, str]) -> bytes:
    """The bytes of a ``precompiled_charsmap``: u32 trie size, trie units, NUL-terminated replacements."""
    rules = {chr(cp): out for cp, out in norm_map.items()}
    rules.update(composition_rules(norm_map))
    blob = bytearray()
    where: dict[str, int] = {}
    keys: dict[bytes, int] = {}
    for key, out in sorted(rules.items()):
        if out not in where:
            where[out] = len(blob)
            blob += out.encode("utf-8") + b"\0"
        keys[key.encode("utf-8")] = where[out]
    units = _build_trie(keys)
    return struct.pack("<I", 4 * len(units)) + struct.pack(f"<{len(units)}I", *units) + bytes(blob)
