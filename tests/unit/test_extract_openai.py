"""OpenAI-compatible backend behaviour that needs no model (the real-server test is in tests/llm)."""

from __future__ import annotations

import socket

from engine.extract import Extractor
from engine.extract.openai_backend import OpenAIBackend, _parse_logprobs
from engine.extract.schema import model_json_schema


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_is_retried_then_a_clear_error():
    backend = OpenAIBackend(base_url=f"http://127.0.0.1:{_free_port()}/v1", timeout=2, max_retries=1, backoff=0.01)
    result = Extractor(backend).extract("I live in Berlin.", "en")
    assert result.error and "failed after 2 attempts" in result.error
    assert result.facts == []


def test_request_shape():
    backend = OpenAIBackend(base_url="http://x/v1", model="Qwen/Qwen2.5-7B-Instruct")
    payload = backend._payload([{"role": "user", "content": "hi"}], model_json_schema(), 200)
    assert payload["temperature"] == 0.0 and payload["logprobs"] is True
    assert payload["response_format"]["type"] == "json_schema"
    assert payload["response_format"]["json_schema"]["schema"] == model_json_schema()
    backend.response_format = "json_object"
    payload = backend._payload([{"role": "user", "content": "hi"}], model_json_schema(), 200)
    assert payload["response_format"] == {"type": "json_object", "schema": model_json_schema()}


def test_logprobs_parsing():
    raw = {"content": [{"token": "{", "logprob": -0.1, "top_logprobs": [{"token": "{", "logprob": -0.1}]}]}
    (tok,) = _parse_logprobs(raw)
    assert tok.text == "{" and tok.logprob == -0.1 and tok.top == {"{": -0.1}
    assert _parse_logprobs(None) is None and _parse_logprobs({"content": [{"bad": 1}]}) is None
