"""The OpenAI-compatible backend against a real local HTTP server.

llama-cpp-python's own server (`python -m llama_cpp.server`, extra `llama-cpp-python[server]`)
serves the same bundled GGUF over the OpenAI chat-completions API. It accepts the
`{"type": "json_object", "schema": ...}` response format, not `json_schema`, and refuses
logprobs without logits_all: the backend must notice both and adapt on its own.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from engine.extract import Extractor
from engine.extract.openai_backend import OpenAIBackend

pytestmark = pytest.mark.llm


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(model_path, tmp_path_factory):
    pytest.importorskip("sse_starlette", reason="needs llama-cpp-python[server]")
    pytest.importorskip("starlette_context", reason="needs llama-cpp-python[server]")
    port = _free_port()
    # The server logs the whole model load to stderr: a pipe would fill up and block it.
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    log = log_path.open("wb")
    threads = os.environ.get("PERSONA_LLM_THREADS", "2")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--model_alias", "local",
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", threads],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"server exited: {log_path.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        else:
            pytest.fail(f"llama_cpp.server not up within 180 s: {log_path.read_text(errors='replace')[-2000:]}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_extraction_through_an_openai_compatible_server(server_url):
    backend = OpenAIBackend(base_url=server_url, model="local", timeout=300, max_concurrency=1)
    extractor = Extractor(backend)
    result = extractor.extract("I live in Berlin.", "en")
    assert result.error is None, result.error
    assert any(f.predicate == "LIVES_IN" and "berlin" in f.object.lower() for f in result.facts)
    assert backend.response_format == "json_object"  # downgraded after the server refused json_schema
    zh = extractor.extract("我是一名护士。", "zh")
    assert any(f.predicate == "WORKS_AS" and "护士" in f.object for f in zh.facts)
    assert zh.llm_calls == 1
