"""The README's first command for real: `persona demo` in a fresh home extracts the example texts
(cascade: encoder + the local LLM), prints the personas, then serves the explorer until stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.llm, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(url: str, proc: subprocess.Popen[bytes], log: Path, limit_s: float = 900.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"persona demo exited with {proc.returncode} before serving:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail(f"persona demo did not answer on {url}:\n{log.read_text()[-4000:]}")


def test_persona_demo_serves_the_explorer(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "PERSONA_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    env.pop("PERSONA_GRAPH_URI", None)  # the embedded default, as a newcomer has it
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "demo", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{base}/health", proc, log)
        page = httpx.get(f"{base}/", timeout=10)
        assert page.status_code == 200 and "<html" in page.text.lower()
        health = httpx.get(f"{base}/health", timeout=10).json()
        assert health["status"] == "ok", health
        persona = httpx.get(f"{base}/users/ana", timeout=10)
        assert persona.status_code == 200, persona.text
        facts = {(f["predicate"], f.get("qid")) for f in persona.json()["facts"]}
        assert ("LIVES_IN", "Q64") in facts  # Berlin, from the demo's facts
        printed = log.read_text()
        assert "persona of ana" in printed and "segment sport-fans" in printed
        assert f"http://127.0.0.1:{port}/" in printed
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C, as the demo says
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        subprocess.run([sys.executable, "-m", "engine.cli", "db", "stop"], env=env, cwd=tmp_path,
                       capture_output=True, timeout=60, check=False)
    assert proc.returncode is not None
