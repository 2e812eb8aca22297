"""The Review and Quality pages in a real Chromium: open a review batch, judge facts with the
keyboard, fix one, add a missing one, and see the Quality page and its Chart.js chart update."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import uvicorn

from engine.api import create_app
from engine.config import ApiSettings, Settings
from engine.review import sample_batch
from engine.store import ServerStatus
from engine.store.falkor import FalkorStore
from tests import reviewdata
from tests.browser.conftest import OfflinePage, _free_port

pytestmark = [pytest.mark.browser, pytest.mark.integration]

TIMEOUT = 15_000
TOKEN = "alice-browser-token"  # noqa: S105 - a test value


@pytest.fixture(scope="module")
def review_graph(falkor_server: ServerStatus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[FalkorStore, Settings]]:
    name = f"r_{uuid.uuid4().hex[:12]}"
    store = FalkorStore("127.0.0.1", int(falkor_server.port or 0), name, password=falkor_server.password)
    store.ensure_schema()
    settings = Settings(home=tmp_path_factory.mktemp("review-home"),
                        graph_uri=falkor_server.graph_uri(), graph_name=name,
                        api=ApiSettings(tokens={"alice": TOKEN}))
    reviewdata.load(store, settings)
    sample_batch(store, 4, since="2024-01-01", seed=1, name="2024-05-a")
    yield store, settings
    try:
        store.query("MATCH (n) DETACH DELETE n")
    finally:
        store.close()


@pytest.fixture(scope="module")
def review_url(review_graph: tuple[FalkorStore, Settings]) -> Iterator[str]:
    store, settings = review_graph
    server = uvicorn.Server(uvicorn.Config(create_app(settings, store), host="127.0.0.1", port=_free_port(),
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="uvicorn-review-tests", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def page(browser_context: object, review_url: str) -> Iterator[OfflinePage]:
    p = OfflinePage(browser_context, review_url)
    yield p
    p.page.close()
    assert p.external == [], f"the UI tried to reach the internet: {p.external}"


# What the analyst decides per document: a verdict per fact (by predicate), missing facts, sentiment key.
PLAN = {
    "d1": {"facts": {"LIKES": "c", "LIVES_IN": "c"}, "missing": [], "sentiment": "s"},
    "d2": {"facts": {"LIKES:rain": "w", "LIKES:tea": "c"}, "missing": [("DISLIKES", "rain", "rain")], "sentiment": "1"},
    "d3": {"facts": {"LIVES_IN": "c", "HAS_PET": "fix:gato"}, "missing": [], "sentiment": "s"},
    "d4": {"facts": {}, "missing": [("WORKS_AS", "profesora", "profesora")], "sentiment": "s"},
}


def current(p: OfflinePage) -> dict:
    return p.page.evaluate("() => window.personaUI.review.item")


def wait_for_doc(p: OfflinePage, previous: str | None) -> str:
    p.page.wait_for_function(
        "(prev) => { const it = window.personaUI.review.item; return it && it.doc_id !== prev && "
        "document.querySelector('#review-facts tbody tr') !== null; }", arg=previous, timeout=TIMEOUT)
    return current(p)["doc_id"]


def quality_f1(p: OfflinePage) -> list:
    return p.page.evaluate(
        "() => window.personaUI.qualityChart.data.datasets.find(d => d.label === 'fact F1').data")


def test_review_a_batch_with_the_keyboard_and_see_quality(page: OfflinePage) -> None:
    p = page
    # Quality before: the batch is there, nothing judged, the chart has no F1 point yet.
    p.page.goto(p.base_url + "/#/quality")
    p.page.wait_for_function("() => window.personaUI.qualityChart", timeout=TIMEOUT)
    assert quality_f1(p) == [None]
    assert "nothing judged yet" in p.page.text_content("#quality-table")

    p.page.goto(p.base_url + "/#/review")
    p.page.wait_for_selector("#batch-table tbody tr[data-batch='2024-05-a']", timeout=TIMEOUT)
    p.page.fill("#review-token", TOKEN)
    p.page.click("#batch-table tbody tr[data-batch='2024-05-a']")
    doc = wait_for_doc(p, None)
    seen: list[str] = []
    while True:
        seen.append(doc)
        item = current(p)
        plan = PLAN[doc]
        assert "mark" in p.page.inner_html("#review-text") or not item["facts"] or doc == "d3"
        for f in item["facts"]:
            label = "rain" if "rain" in f["label"].lower() else "tea" if "tea" in f["label"].lower() else ""
            action = plan["facts"].get(f"{f['predicate']}:{label}") or plan["facts"][f["predicate"]]
            if action.startswith("fix:"):
                p.page.keyboard.press("f")
                p.page.wait_for_selector("#fix-form:not([hidden])", timeout=TIMEOUT)
                p.page.fill("#fix-object", action[4:])
                p.page.press("#fix-object", "Enter")
            else:
                p.page.keyboard.press(action)
        for predicate, obj, evidence in plan["missing"]:
            p.page.keyboard.press("a")
            p.page.wait_for_selector("#add-form:not([hidden])", timeout=TIMEOUT)
            p.page.select_option("#add-predicate", predicate)
            p.page.fill("#add-object", obj)
            p.page.fill("#add-evidence", evidence)
            p.page.press("#add-evidence", "Enter")
            p.page.wait_for_selector("#add-form[hidden]", state="attached", timeout=TIMEOUT)
        p.page.keyboard.press(plan["sentiment"])
        verdicts = p.page.text_content("#review-facts")
        if doc == "d3":
            assert "fix → HAS_PET gato" in verdicts
            p.shot("review-fix")
        if doc == "d2":
            assert not p.page.locator("#error").is_visible(), (seen, p.page.text_content("#error"))
            assert "+ DISLIKES → rain" in p.page.text_content("#missing-list")
            assert "wrong, it is negative" in p.page.text_content("#sentiment-verdict")
            assert p.page.text_content("#review-text mark.v-wrong") == "rain"  # struck through
            p.shot("review-document")
        if doc == "d4":
            assert p.page.text_content("#review-text mark.added") == "profesora"
        p.page.keyboard.press("Enter")
        if len(seen) == 4:
            p.page.wait_for_function(
                "() => document.querySelector('#review-status').textContent.includes('Batch complete')",
                timeout=TIMEOUT)
            break
        doc = wait_for_doc(p, doc)
    assert sorted(seen) == ["d1", "d2", "d3", "d4"]
    assert not p.page.locator("#error").is_visible(), p.page.text_content("#error")
    assert p.page.text_content("#item-list-title").endswith("4 of 4 judged")
    p.shot("review-complete")

    # Resumable: a judged document opens with its verdicts and who judged it.
    p.page.goto(p.base_url + "/#/review/2024-05-a/d2")
    p.page.wait_for_function("() => window.personaUI.review.item && window.personaUI.review.item.doc_id === 'd2'"
                             " && window.personaUI.review.item.state === 'done'", timeout=TIMEOUT)
    assert "judged by alice" in p.page.text_content("#review-status")
    assert "wrong" in p.page.text_content("#review-facts")

    # The graph changed: LIKES rain is rejected (shown struck through on the persona page).
    p.page.goto(p.base_url + "/#/user/ana")
    p.page.wait_for_selector("#facts-table tr.rejected", timeout=TIMEOUT)
    assert "rejected" in p.page.text_content("#facts-table tr.rejected")

    # Quality after: the hand-computed batch (TP 4, FP 2, FN 3 → F1 8/13) in the table and the chart.
    p.page.goto(p.base_url + "/#/quality")
    p.page.wait_for_function(
        "() => window.personaUI.qualityChart && window.personaUI.qualityChart.data.datasets"
        ".find(d => d.label === 'fact F1').data[0] !== null", timeout=TIMEOUT)
    assert quality_f1(p)[0] == pytest.approx(8 / 13)
    row = p.page.text_content("#quality-table tbody tr[data-batch='2024-05-a']")
    assert "0.615 [" in row and "4/4" in row and "wide interval" in row
    assert "Wilson" in p.page.text_content("#quality-note")
    assert "en" in p.page.text_content("#quality-slices table[data-slice='language']")
    assert p.page.locator("#quality-alert").is_hidden()
    p.shot("quality")
    assert not p.console_errors, p.console_errors
