"""Forget that reaches the disk: graph delete → log compaction → extraction cache → export files.

`forget_user` (engine.persona) removes the user from the graph; on its own that leaves the user's
id and words in the database's append-only log, in the extraction cache and in export files
written earlier. `forget_everywhere` runs every step in order and says what it found and did.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field

from engine.extract.cache import ExtractionCache, PurgeReport
from engine.persona import ForgetReport, forget_user
from engine.store import CompactReport, GraphStore

# The user's documents, read before the delete: their text keys the extraction cache rows, their
# ids are looked for in the database and the job records afterwards.
_USER_DOCS = """
MATCH (d:Document)-[:ABOUT]->(:User {id: $id})
RETURN d.id AS id, d.text AS text, d.lang AS lang
UNION
MATCH (d:Document {user_id: $id})
RETURN d.id AS id, d.text AS text, d.lang AS lang
"""

# Files whose content the engine itself scrubs; everything else under the home is scanned.
_DB_DIR = "falkordb"
_CACHE_SUFFIXES = ("", "-wal", "-shm", "-journal")


class FileHit(BaseModel):
    path: str
    matches: list[str]  # which needles: "user id", "hashed id", "document text"
    deleted: bool = False


class ForgetEverywhereReport(BaseModel):
    user_id_found: bool
    graph: ForgetReport
    compaction: CompactReport
    cache: PurgeReport | None = None
    query_logs_dropped: int = 0  # the database's records of recent queries with their parameters
    job_records: int = 0  # queue job records the user was taken out of
    files: list[FileHit] = Field(default_factory=list)
    # Files under the home still holding the user after every step (should be empty, or only
    # the files listed above when they were not deleted).
    residual: list[FileHit] = Field(default_factory=list)
    # What the database server itself still holds of the user (keys, streams, records, graph).
    server_residual: list[str] = Field(default_factory=list)

    def leftovers(self) -> list[str]:
        """Everything of the user still found, except files listed for --delete-exports."""
        listed = {f.path for f in self.files}
        return [h.path for h in self.residual if h.path not in listed] + self.server_residual


class UserDocuments(BaseModel):
    ids: list[str] = Field(default_factory=list)
    texts: list[tuple[str, str]] = Field(default_factory=list)  # (text, lang)


def user_documents(store: GraphStore, user_id: str) -> UserDocuments:
    """Ids and (text, lang) of every stored document of the user (text kept when PERSONA_STORE_TEXT)."""
    rows = store.ro_query(_USER_DOCS, {"id": user_id}).rows
    return UserDocuments(
        ids=sorted({str(doc_id) for doc_id, _, _ in rows if doc_id}),
        texts=[(str(text), str(lang or "")) for _, text, lang in rows if text],
    )


class JobRecords(Protocol):
    """Where queued ingests keep per-job records of users and documents (engine.distributed)."""

    def forget_user(self, user_id: str, doc_ids: Sequence[str], texts: Sequence[str] = ()) -> int: ...


def _whole_texts(texts: Iterable[str]) -> list[str]:
    # Whole texts, not fragments, and not short ones: a short phrase ("I love football") is anyone's.
    return [t for t in texts if len(t.strip()) >= 8]


def _needles(user_id: str, texts: Sequence[str], hashed_ids: Sequence[str]) -> dict[str, list[bytes]]:
    needles = {"user id": [user_id.encode("utf-8")], "hashed id": [h.encode() for h in hashed_ids]}
    needles["document text"] = [t.encode("utf-8") for t in _whole_texts(texts)]
    return {k: v for k, v in needles.items() if v}


def _file_matches(path: Path, needles: dict[str, list[bytes]]) -> list[str]:
    try:
        size = path.stat().st_size
        if size == 0:
            return []
        with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            found = [kind for kind, values in needles.items() if any(data.find(v) >= 0 for v in values)]
    except (OSError, ValueError):
        return []
    if path.suffix.lower() in (".parquet", ".pq"):
        found = sorted(set(found) | set(_parquet_matches(path, needles)))
    return found


def _parquet_matches(path: Path, needles: dict[str, list[bytes]]) -> list[str]:
    """Parquet pages are compressed: compare the decoded string cells."""
    try:
        import pyarrow.parquet as pq

        table = pq.read_table(path)
    except Exception:  # noqa: BLE001 - not a readable parquet file: the byte scan stands
        return []
    cells: set[str] = set()
    for column in table.columns:
        if column.type in ("string", "large_string"):
            cells.update(v for v in column.to_pylist() if v)
    wanted = {kind: {v.decode("utf-8", "replace") for v in values} for kind, values in needles.items()}
    return [kind for kind, values in wanted.items() if any(any(v in c for c in cells) for v in values)]


def _walk(root: Path, skip: Iterable[Path]) -> Iterable[Path]:
    skipped = {p.resolve() for p in skip}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.resolve() not in skipped:
            if not any(parent in skipped for parent in path.resolve().parents):
                yield path


def scan_files(
    home: Path,
    user_id: str,
    *,
    texts: Sequence[str] = (),
    hashed_ids: Sequence[str] = (),
    skip: Iterable[Path] = (),
) -> list[FileHit]:
    """Files under the home holding the raw user id, a hashed id or a whole document text."""
    needles = _needles(user_id, texts, hashed_ids)
    hits = []
    for path in _walk(Path(home), skip):
        matches = _file_matches(path, needles)
        if matches:
            hits.append(FileHit(path=str(path), matches=matches))
    return hits


def forget_everywhere(
    store: GraphStore,
    user_id: str,
    *,
    home: Path,
    cache_path: Path | None = None,
    delete_files: bool = False,
    salts: Sequence[str] = (),
    jobs: JobRecords | None = None,
) -> ForgetEverywhereReport:
    """Forget a user in the graph, on the database's disk, in the cache and in files under home.

    1. read the user's documents (texts key the cache rows), 2. delete from the graph,
    3. take the user out of the queue's job records, drop the database's query logs,
    4. compact the database and wait until the rewritten files replace the old ones,
    5. purge the extraction cache rows of the user's documents and scrub the sqlite file,
    6. list files under the home (exports, manifests, anything) holding the raw id, the id hashed
       with one of `salts` (hashed exports) or a whole document text; delete them if asked,
    7. rescan the whole home, database files included, and ask the database server itself
       (every key, stream and graph); report what still holds the user.
    """
    home = Path(home)
    docs = user_documents(store, user_id)
    texts = docs.texts
    graph = forget_user(store, user_id)
    job_records = jobs.forget_user(user_id, docs.ids, [t for t, _ in texts]) if jobs is not None else 0
    dropped = store.drop_query_log()
    compaction = store.compact(wait=True)
    cache_path = cache_path if cache_path is not None else home / "extraction_cache.sqlite"
    purge = None
    if cache_path.exists():
        cache = ExtractionCache(cache_path)
        try:
            purge = cache.purge(owner=user_id, texts=texts)
        finally:
            cache.close()
    from engine.export import hash_id

    hashed = [hash_id(user_id, salt) for salt in salts if salt]
    engine_files = [home / _DB_DIR] + [Path(str(cache_path) + s) for s in _CACHE_SUFFIXES]
    files = scan_files(home, user_id, texts=[t for t, _ in texts], hashed_ids=hashed, skip=engine_files)
    if delete_files:
        for hit in files:
            Path(hit.path).unlink(missing_ok=True)
            hit.deleted = True
    residual = scan_files(home, user_id, texts=[t for t, _ in texts], hashed_ids=hashed)
    return ForgetEverywhereReport(
        user_id_found=graph.user_removed or bool(texts) or bool(docs.ids),
        graph=graph,
        compaction=compaction,
        cache=purge,
        query_logs_dropped=dropped,
        job_records=job_records,
        files=files,
        residual=residual,
        server_residual=store.residue([user_id, *_whole_texts(t for t, _ in texts)], docs.ids),
    )
