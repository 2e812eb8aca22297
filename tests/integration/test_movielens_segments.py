"""Real users: MovieLens ratings and tags → personas + behaviour → segments, checked against the CSV.

Mapping (documented here because it is the whole point of the test):
- a rating ≥ 4 is a document saying the user LIKES each of the movie's genres (Wikidata film genres);
- every rating is also a `view` event of the movie (linked by title; category = its first genre);
- free-text tags are LIKES facts grounded by the real linker (QID or NIL).
Segments are then compared with what the CSV says directly. Needs ../shared/data/users.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.export import export_segment
from engine.ingest import Event
from engine.pipeline import apply_events, apply_fact_lines
from engine.segment import apply_definition, run_segment, segment_members
from engine.segment.discover import discover
from tests.factlines import fact

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "users"
if not (DATA / "movielens_ratings.csv").exists():
    pytest.skip(f"MovieLens data not found at {DATA} (needs ../shared/data/users)", allow_module_level=True)

GENRES = {
    "Action": "Q188473", "Adventure": "Q319221", "Animation": "Q202866", "Children": "Q2143665",
    "Comedy": "Q157443", "Crime": "Q959790", "Documentary": "Q93204", "Drama": "Q130232",
    "Fantasy": "Q157394", "Film-Noir": "Q185867", "Horror": "Q200092", "Musical": "Q842256",
    "Mystery": "Q1200678", "Romance": "Q1054574", "Sci-Fi": "Q471839", "Thriller": "Q2484376",
    "War": "Q369747", "Western": "Q172980",
}
SAMPLE_USERS = 60
MAX_RATINGS = 120  # per user, the most recent ones
NOW = datetime(2018, 10, 1, tzinfo=UTC)


def ts(unix: str) -> str:
    return datetime.fromtimestamp(int(unix), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_sample() -> tuple[dict[str, list[dict]], dict[str, dict], dict[str, list[dict]]]:
    movies = {r["movieId"]: r for r in csv.DictReader((DATA / "movielens_movies.csv").open(encoding="utf-8"))}
    tagged = [json.loads(line) for line in (DATA / "movielens_tags_by_user.jsonl").open(encoding="utf-8")]
    tag_users = sorted((t["userId"] for t in tagged), key=int)[:10]
    ratings: dict[str, list[dict]] = defaultdict(list)
    for r in csv.DictReader((DATA / "movielens_ratings.csv").open(encoding="utf-8")):
        ratings[r["userId"]].append(r)
    chosen = sorted(set(tag_users) | set(sorted(ratings, key=int)[: SAMPLE_USERS - len(tag_users)]), key=int)
    sample = {u: sorted(ratings[u], key=lambda r: int(r["timestamp"]))[-MAX_RATINGS:] for u in chosen}
    tags = {t["userId"]: t["tags"][:20] for t in tagged if t["userId"] in sample}
    return sample, movies, tags


@pytest.fixture(scope="module")
def movielens(falkor_server, tmp_path_factory):
    from engine.config import Settings
    from engine.store.falkor import FalkorStore

    store = FalkorStore("127.0.0.1", int(falkor_server.port or 0), "t_movielens", password=falkor_server.password)
    store.query("MATCH (n) DETACH DELETE n")
    store.ensure_schema()
    settings = Settings(graph_uri=falkor_server.graph_uri(), graph_name="t_movielens")
    sample, movies, tags = load_sample()
    lines, events = [], []
    for uid, rows in sample.items():
        for r in rows:
            movie = movies[r["movieId"]]
            genres = [g for g in movie["genres"].split("|") if g in GENRES]
            doc = f"ml-{uid}-{r['movieId']}"
            if float(r["rating"]) >= 4:
                lines += [fact(doc_id=doc, user_id=f"ml{uid}", ts=ts(r["timestamp"]), predicate="LIKES",
                               object=g.lower(), object_qid=GENRES[g], confidence=0.6, source="movielens")
                          for g in genres]
            events.append(Event(user_id=f"ml{uid}", type="view", item=movie["title"], event_id=doc,
                                category=GENRES[genres[0]] if genres else None, ts=ts(r["timestamp"])))
        for t in tags.get(uid, []):
            lines.append(fact(doc_id=f"mlt-{uid}-{t['movieId']}-{abs(hash(t['tag'])) % 10**8}", user_id=f"ml{uid}",
                              ts=ts(str(t["timestamp"])), predicate="LIKES", object=t["tag"], text=t["tag"],
                              confidence=0.5, source="movielens-tag"))
    report = apply_fact_lines(store, settings, lines)
    apply_events(store, events)
    yield store, sample, movies, report
    store.query("MATCH (n) DETACH DELETE n")
    store.close()


def expected_likers(sample, movies, genre: str) -> set[str]:
    return {f"ml{u}" for u, rows in sample.items()
            if any(float(r["rating"]) >= 4 and genre in movies[r["movieId"]]["genres"].split("|") for r in rows)}


def test_personas_and_genre_segments_match_the_ratings(movielens) -> None:
    store, sample, movies, report = movielens
    assert report.facts_applied > 1000
    for seg_id, genre in (("ml-comedy", "Comedy"), ("ml-scifi", "Sci-Fi")):
        apply_definition(store, {"id": seg_id, "where": {"likes": {"descendant_of": GENRES[genre]}}})
        run_segment(store, seg_id, now=NOW)
        got = {m.user_id: m.reason for m in segment_members(store, seg_id, limit=10_000)}
        assert set(got) == expected_likers(sample, movies, genre)
        assert all(f"({GENRES[genre]})" in reason and "[docs ml-" in reason for reason in got.values())
    # anything under "film genre" (Q201658): every genre is an instance of it
    apply_definition(store, {"id": "ml-any", "where": {"likes": {"descendant_of": "Q201658"}}})
    run_segment(store, "ml-any", now=NOW)
    anyone = {m.user_id for m in segment_members(store, "ml-any", limit=10_000)}
    assert anyone == set().union(*(expected_likers(sample, movies, g) for g in GENRES))


def test_behaviour_segment_matches_the_views(movielens) -> None:
    store, sample, movies, _ = movielens
    apply_definition(store, {"id": "ml-horror-viewers", "where": {"viewed": {
        "descendant_of": GENRES["Horror"], "count": {"gte": 3}}}})
    run_segment(store, "ml-horror-viewers", now=NOW)
    got = {m.user_id for m in segment_members(store, "ml-horror-viewers", limit=10_000)}
    expected = set()
    for u, rows in sample.items():
        firsts = [movies[r["movieId"]]["genres"].split("|")[0] for r in rows]
        # a view is under horror when its category (first genre) is horror or a subgenre of it
        if sum(1 for g in firsts if g == "Horror") >= 3:
            expected.add(f"ml{u}")
    assert expected <= got


def test_combined_segment_discovery_and_hashed_export(movielens, tmp_path: Path) -> None:
    store, sample, movies, _ = movielens
    apply_definition(store, {"id": "ml-horror-not-romance", "where": {"all": [
        {"likes": {"descendant_of": GENRES["Horror"]}},
        {"not": {"likes": {"descendant_of": GENRES["Romance"]}}},
    ]}})
    report = run_segment(store, "ml-horror-not-romance", now=NOW)
    expected = expected_likers(sample, movies, "Horror") - expected_likers(sample, movies, "Romance")
    assert report.size == len(expected)
    proposals = discover(store, min_size=3, seed=7)
    assert proposals and sum(p.size for p in proposals) <= len(sample)
    assert all(p.entities and p.label.startswith("likes ") for p in proposals)
    out = tmp_path / "ml.csv"
    export_segment(store, "ml-any", fmt="csv", out=out, hash_ids=True, salt="pepper")
    blob = out.read_bytes()
    assert not any(f"ml{u},".encode() in blob or f"ml-{u}-".encode() in blob for u in sample)
