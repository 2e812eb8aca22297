"""OpenAI-compatible chat completions (vLLM, SGLang, Ollama, llama.cpp server, OpenAI itself).

- ``response_format={"type": "json_schema", ...}`` holds the server to the schema (vLLM/SGLang
  use xgrammar/outlines, llama.cpp server compiles GBNF); servers that ignore it still get the
  schema in the system prompt's examples and the extractor's repair turn.
- Bounded concurrency: a semaphore shared by every thread using this backend (``max_concurrency``),
  so ``complete_many`` / a thread pool cannot flood a GPU server.
- Retries with exponential backoff and jitter on connection errors, timeouts, 429 and 5xx;
  4xx other than 429 fail at once (retrying a bad request does not help).
- ``logprobs=True`` is requested; servers that return token log-probabilities give the
  extractor real confidences, the others fall back to a default.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from engine.extract.types import BackendError, Completion, TokenLogprob

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class _Rejected(Exception):
    """The server refused the request itself (4xx, or a 500 naming a feature): do not retry it."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_concurrency: int = 8,
        logprobs: bool = True,
        response_format: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = (base_url or "http://127.0.0.1:8000/v1").rstrip("/")
        self.model = model or "Qwen/Qwen2.5-7B-Instruct"
        self.model_id = f"openai:{self.base_url}:{self.model}"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.max_retries = max_retries
        self.backoff = backoff
        self.logprobs = logprobs
        # "json_schema" (OpenAI, vLLM, SGLang, Ollama, llama.cpp's C++ server) or "json_object"
        # with an inline schema (llama-cpp-python's server). Downgraded automatically once if
        # the server rejects the first style.
        self.response_format = response_format or "json_schema"
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
            transport=transport,
        )
        self.max_concurrency = max_concurrency

    def _payload(self, messages: list[dict[str, str]], schema: dict[str, Any], max_tokens: int) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": 0.0,
            "max_tokens": max_tokens,
        }
        if self.response_format == "json_object":
            payload["response_format"] = {"type": "json_object", "schema": schema}
        else:
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "persona_extraction", "schema": schema, "strict": True},
            }
        if self.logprobs:
            payload["logprobs"] = True
            payload["top_logprobs"] = 5
        return payload

    def complete(
        self, messages: list[dict[str, str]], schema: dict[str, Any], *, max_tokens: int
    ) -> Completion:
        started = time.perf_counter()
        with self._slots:
            data = self._post_adapting(messages, schema, max_tokens)
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as exc:
            raise BackendError(f"malformed response from {self.base_url}: {exc}") from exc
        usage = data.get("usage") or {}
        return Completion(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            seconds=time.perf_counter() - started,
            logprobs=_parse_logprobs(choice.get("logprobs")),
            finish_reason=choice.get("finish_reason"),
        )

    def _post_adapting(
        self, messages: list[dict[str, str]], schema: dict[str, Any], max_tokens: int
    ) -> dict[str, Any]:
        """Post; if the server rejects logprobs or the json_schema style, drop that and retry."""
        for _ in range(3):
            try:
                return self._post_with_retries(self._payload(messages, schema, max_tokens))
            except _Rejected as exc:
                body = exc.body.lower()
                if self.logprobs and "logprob" in body:
                    self.logprobs = False
                elif self.response_format == "json_schema" and (
                    "response_format" in body or "json_schema" in body or exc.status == 422
                ):
                    self.response_format = "json_object"
                else:
                    raise BackendError(f"HTTP {exc.status} from {self.base_url}: {exc.body[:300]}") from None
        raise BackendError(f"{self.base_url} rejected every request style")

    def _post_with_retries(self, payload: dict[str, Any]) -> dict[str, Any]:
        last: str = ""
        for attempt in range(self.max_retries + 1):
            try:
                response = self._client.post("/chat/completions", json=payload)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    try:
                        return response.json()
                    except ValueError as exc:
                        last = f"invalid JSON body: {exc}"
                elif response.status_code == 500 and _names_a_request_feature(response.text):
                    # Some servers (llama-cpp-python) answer a request they reject with a 500.
                    raise _Rejected(response.status_code, response.text)
                elif response.status_code in RETRY_STATUS:
                    last = f"HTTP {response.status_code}: {response.text[:200]}"
                else:
                    raise _Rejected(response.status_code, response.text)
            if attempt < self.max_retries:
                time.sleep(self.backoff * (2**attempt) * (0.5 + random.random()))  # noqa: S311 - jitter
        raise BackendError(f"{self.base_url} failed after {self.max_retries + 1} attempts: {last}")

    def complete_many(
        self, requests: list[tuple[list[dict[str, str]], dict[str, Any], int]]
    ) -> list[Completion | BackendError]:
        """Several requests at once, at most ``max_concurrency`` in flight; order preserved."""

        def one(req: tuple[list[dict[str, str]], dict[str, Any], int]) -> Completion | BackendError:
            messages, schema, max_tokens = req
            try:
                return self.complete(messages, schema, max_tokens=max_tokens)
            except BackendError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            return list(pool.map(one, requests))

    def close(self) -> None:
        self._client.close()


def _names_a_request_feature(body: str) -> bool:
    low = body.lower()
    return any(word in low for word in ("logprob", "response_format", "validation error"))


def _parse_logprobs(raw: Any) -> list[TokenLogprob] | None:
    """OpenAI chat logprobs: {"content": [{"token", "logprob", "top_logprobs": [...]}, ...]}."""
    if not isinstance(raw, dict) or not isinstance(raw.get("content"), list):
        return None
    out: list[TokenLogprob] = []
    for item in raw["content"]:
        try:
            top = {t["token"]: float(t["logprob"]) for t in item.get("top_logprobs") or []}
            out.append(TokenLogprob(text=item["token"], logprob=float(item["logprob"]), top=top))
        except (KeyError, TypeError, ValueError):
            return None
    return out
