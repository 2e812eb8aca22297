"""The explorer in a real Chromium: search, graph, evidence, conflicts, segments, Cypher, /docs."""

from __future__ import annotations

import pytest

from tests.browser.conftest import OfflinePage

pytestmark = [pytest.mark.browser, pytest.mark.integration]

TIMEOUT = 15_000  # ms; generous for 2 shared cores


def open_user(p: OfflinePage, query: str) -> None:
    p.page.goto(p.base_url + "/")
    p.page.fill("#search-input", query)
    p.page.click("#search-form button")
    p.page.wait_for_function(
        "() => window.personaUI.cy && window.personaUI.cy.nodes().length > 1", timeout=TIMEOUT)


def click_edge(p: OfflinePage, predicate: str, target_caption: str) -> None:
    """A real mouse click on the edge's midpoint in the Cytoscape canvas."""
    x, y = p.page.evaluate(
        """([pred, caption]) => {
            const cy = window.personaUI.cy;
            const edge = cy.edges().filter(e => e.data('type') === pred && e.target().data('caption') === caption)[0];
            const box = document.querySelector('#persona-graph').getBoundingClientRect();
            const m = edge.renderedMidpoint();
            return [box.left + m.x, box.top + m.y];
        }""",
        [predicate, target_caption],
    )
    p.page.mouse.click(x, y)


def test_search_user_click_fact_and_read_evidence(page: OfflinePage) -> None:
    p = page
    open_user(p, "ana")
    assert p.page.text_content("#persona-title") == "ana"
    click_edge(p, "LIVES_IN", "Berlin")
    p.page.wait_for_selector("#fact-title", timeout=TIMEOUT)
    assert "LIVES_IN → Berlin" in p.page.text_content("#fact-title")
    evidence = p.page.text_content("#evidence-list")
    assert "Just moved to Berlin" in evidence
    detail = p.page.text_content("#fact-detail")
    assert "first seen" in detail and "2024-06-10 18:30:00 UTC" in detail and "0.90" in detail

    # The old city and the old like are drawn dashed grey; the table strikes them through.
    styles = p.page.evaluate(
        """() => window.personaUI.cy.edges('.superseded').map(e => [e.data('type'), e.style('line-style'),
                                                                    e.style('line-color')])""")
    assert ["LIVES_IN", "dashed", "rgb(154,160,166)"] in styles
    assert p.page.locator("#facts-table tr.superseded").count() == 2
    conflicts = p.page.text_content("#conflict-list")
    assert "functional" in conflicts and "exclusive" in conflicts
    p.shot("persona-ana")

    # Clicking the superseded fact in the table shows why, with its own evidence.
    p.page.click("#facts-table tr.superseded >> text=LIVES_IN")
    assert "superseded" in p.page.text_content("#fact-detail")
    assert "我住在北京" in p.page.text_content("#evidence-list")
    assert not p.console_errors, p.console_errors


def test_search_by_entity_label_and_quarantined_fact(page: OfflinePage) -> None:
    p = page
    p.page.goto(p.base_url + "/")
    p.page.fill("#search-input", "Shanghai")
    p.page.click("#search-form button")
    p.page.wait_for_function("() => window.personaUI.persona && window.personaUI.persona.user.id === 'mei'",
                             timeout=TIMEOUT)
    assert "LIVES_IN → Shanghai" in p.page.text_content("#result-list")
    colour = p.page.evaluate(
        "() => window.personaUI.cy.edges('.quarantined').map(e => [e.target().data('caption'), e.style('line-color')])")
    assert colour == [["Barack Obama", "rgb(217,48,37)"]]
    click_edge(p, "LIVES_IN", "Barack Obama")
    p.page.wait_for_selector("#fact-title", timeout=TIMEOUT)
    detail = p.page.text_content("#fact-detail")
    assert "quarantined" in detail
    p.shot("persona-mei-quarantined")


def test_segments_page_members_and_export(page: OfflinePage) -> None:
    p = page
    p.page.goto(p.base_url + "/#/segments")
    p.page.wait_for_selector("#segment-table tbody tr", timeout=TIMEOUT)
    row = p.page.locator("#segment-table tbody tr", has_text="Sport fans")
    assert "3" in row.text_content()
    row.click()
    p.page.wait_for_selector("#member-table tbody tr", timeout=TIMEOUT)
    members = p.page.text_content("#member-table")
    assert "ana" in members and "luis" in members and "basketball" in members
    assert p.page.text_content("#page-info") == "1–3 of 3"  # ana, luis and mei (tennis)
    p.page.select_option("#export-form select[name=format]", "jsonl")
    p.page.click("#export-button")
    p.page.wait_for_function(
        "() => document.querySelector('#export-link') || !document.querySelector('#error').hidden",
        timeout=TIMEOUT)
    error = p.page.locator("#error")
    if error.is_visible():
        pytest.fail(f"export failed in the UI: {error.text_content()}")
    link = p.page.get_attribute("#export-link", "href")
    assert link and link.startswith("/exports/sport-fans-") and link.endswith(".jsonl")
    p.shot("segments")
    p.page.click("#member-table >> text=ana")
    p.page.wait_for_function("() => window.personaUI.persona && window.personaUI.persona.user.id === 'ana'",
                             timeout=TIMEOUT)
    assert "Sport fans" in p.page.text_content("#membership-list")


def test_cypher_console_table_graph_and_read_only(page: OfflinePage) -> None:
    p = page
    p.page.goto(p.base_url + "/#/cypher")
    p.page.fill("#cypher-query",
                "MATCH (u:User)-[f:LIVES_IN]->(c:Entity) RETURN u, f, c, f.status AS status ORDER BY u.id")
    p.page.click("#cypher-run")
    p.page.wait_for_selector("#cypher-table tbody tr", timeout=TIMEOUT)
    assert p.page.locator("#cypher-table tbody tr").count() == 5
    assert "5 row(s)" in p.page.text_content("#cypher-status")
    assert "(:User ana)" in p.page.text_content("#cypher-table")
    p.shot("cypher-table")
    p.page.click('[data-tab="graph"]')
    p.page.wait_for_function("() => window.personaUI.cyCypher && window.personaUI.cyCypher.edges().length === 5",
                             timeout=TIMEOUT)
    p.shot("cypher-graph")

    p.page.fill("#cypher-query", "MATCH (u:User {id: 'ana'}) SET u.hacked = true RETURN u")
    p.page.click("#cypher-run")
    p.page.wait_for_selector("#error:not([hidden])", timeout=TIMEOUT)
    assert "Error 400" in p.page.text_content("#error") and "read-only" in p.page.text_content("#error")


def test_docs_page_works_offline(page: OfflinePage) -> None:
    p = page
    p.page.goto(p.base_url + "/docs")
    p.page.wait_for_selector(".swagger-ui .info .title", timeout=TIMEOUT)
    assert "Persona Engine" in p.page.text_content(".swagger-ui .info .title")
    p.page.locator(".opblock-summary-path", has_text="/users/{user_id}/graph").first.wait_for(timeout=TIMEOUT)
    p.shot("api-docs")
