"""Browser tier: the real app (uvicorn on a free loopback port) on a demo graph in the session's
embedded FalkorDB, driven by Debian's Chromium through Playwright (no `playwright install`)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from importlib.resources import as_file, files
from pathlib import Path

import pytest
import uvicorn

from engine.api import create_app
from engine.config import ApiSettings, Settings
from engine.ingest import FactLine, read_fact_lines
from engine.pipeline import apply_fact_lines
from engine.store import ServerStatus
from engine.store.falkor import FalkorStore

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TOKEN = "browser-test-token"  # noqa: S105 - a test value


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _demo_lines() -> list[FactLine]:
    with as_file(files("engine.examples").joinpath("demo_facts.jsonl")) as path:
        return [f for _, f in read_fact_lines(Path(path)) if isinstance(f, FactLine)]


@pytest.fixture(scope="module")
def demo_graph(falkor_server: ServerStatus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[FalkorStore, Settings]]:
    name = f"b_{uuid.uuid4().hex[:12]}"
    store = FalkorStore("127.0.0.1", int(falkor_server.port or 0), name, password=falkor_server.password)
    store.ensure_schema()
    settings = Settings(home=tmp_path_factory.mktemp("browser-home"),
                        graph_uri=falkor_server.graph_uri(), graph_name=name,
                        api=ApiSettings(token=TOKEN))
    apply_fact_lines(store, settings, _demo_lines())
    try:
        from engine.segment import apply_definition, run_segment
    except ImportError:
        pass  # the segments test reports the 501 the API gives then
    else:
        apply_definition(store, {"id": "sport-fans", "name": "Sport fans",
                                 "where": {"likes": {"descendant_of": "Q349"}}})
        run_segment(store, "sport-fans")
    yield store, settings
    try:
        store.query("MATCH (n) DETACH DELETE n")
    finally:
        store.close()


@pytest.fixture(scope="module")
def live_url(demo_graph: tuple[FalkorStore, Settings]) -> Iterator[str]:
    store, settings = demo_graph
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, store), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="uvicorn-browser-tests", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail("the browser tier needs Debian's chromium: run scripts/setup-system.sh (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser tier needs the `playwright` pip package (pip install -e '.[dev]')")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh user-data-dir every run
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1440, "height": 900}, locale="en-US",
        )
        try:
            yield context
        finally:
            context.close()
    shutil.rmtree(profile, ignore_errors=True)


class OfflinePage:
    """A page that refuses (and remembers) every request leaving the test server: the UI must
    work with no internet, so a CDN request is a failure, not a slow path."""

    def __init__(self, context: object, base_url: str) -> None:
        self.page = context.new_page()  # type: ignore[attr-defined]
        self.base_url = base_url
        self.external: list[str] = []
        self.console_errors: list[str] = []
        self.page.route("**/*", self._route)
        self.page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.console_errors.append(str(e)))

    def _route(self, route: object) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        if url.startswith(self.base_url) or url.startswith("data:"):
            route.continue_()  # type: ignore[attr-defined]
        else:
            self.external.append(url)
            route.abort()  # type: ignore[attr-defined]

    def shot(self, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def page(browser_context: object, live_url: str) -> Iterator[OfflinePage]:
    p = OfflinePage(browser_context, live_url)
    yield p
    p.page.close()
    assert p.external == [], f"the UI tried to reach the internet: {p.external}"
