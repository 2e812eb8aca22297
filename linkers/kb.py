"""The compact, read-only knowledge base the linker queries, and its on-disk format.

Format: one zlib-compressed pickle of plain builtins (lists of str, bytes, dicts of str→int).
Integer columns are stored as raw `array` bytes, so loading is one C-level unpickle plus a few
`array.frombytes` calls (well under 2 s for ~300k entities, see benchmarks/linking.py). The
unpickler refuses every global, so a tampered file cannot execute code: only builtins load.
"""

from __future__ import annotations

import io
import os
import pickle
import threading
import zlib
from array import array
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

FORMAT_VERSION = 2  # 2: Chinese readings, phonetic characters, sound index (linkers.pinyin); "facts" is-a
DEFAULT_KB_PATH = Path(__file__).resolve().parent / "data" / "kb.bin"
REBUILD_HINT = "rebuild it with `persona kb build` (inputs: ../shared/data/wikidata, see linkers/README)"

# Language bits of an alias posting (one byte per posting).
LANG_BITS = {"en": 1, "zh": 2, "es": 4, "und": 8}
LABEL_BIT = 16  # the alias is the entity's chosen label in some language
ACRONYM_BIT = 32  # the entity has this key only as an all-capitals alias ("CAR", "PET")

# Where an is-a edge came from. Only Wikidata statements are P31/P279; the others keep their source
# so closures can leave some out (DBpedia's ontology puts human under animal, for one).
# "facts": the value of a statement typed by its property (linkers.sources.FACT_VALUE_CLASSES).
ISA_SOURCES = ("wikidata", "curated", "wordnet", "dbpedia", "openfoodfacts", "geo", "nsi", "languages", "facts")
# Sources followed by closures and range checks by default.
TRUSTED_ISA = frozenset({"wikidata", "curated", "wordnet", "openfoodfacts", "geo", "nsi", "languages", "facts"})
# Class statements proper: a type inferred from a statement's value ("facts") left out.
STATED_ISA = TRUSTED_ISA - {"facts"}

# Relations stored as adjacency lists (CSR). "p31" and "isa" carry a source byte per edge.
RELATIONS = ("p31", "isa", "located", "manufacturer")

# Coarse domains (bit flags) used for `persona kb info` and predicate/context preferences.
DOMAINS = (
    "place",
    "occupation",
    "organisation",
    "product",
    "food",
    "sport",
    "animal",
    "language",
    "person",
    "music",
    "taxon",
    # Everyday persona domains (appended: earlier bits keep their meaning).
    "drink",
    "hobby",
    "instrument",
    "vehicle",
    "device",
    "brand",
    "family",
)


class KBError(RuntimeError):
    """The knowledge base file is missing, corrupt or from an incompatible builder."""


@dataclass(frozen=True)
class Posting:
    entity: int
    flags: int


class _Csr:
    """Adjacency list in compressed sparse row form: row i is targets[offsets[i]:offsets[i+1]]."""

    __slots__ = ("offsets", "targets", "sources")

    def __init__(self, offsets: array, targets: array, sources: bytes | None) -> None:
        self.offsets = offsets
        self.targets = targets
        self.sources = sources

    def row(self, i: int) -> range:
        return range(self.offsets[i], self.offsets[i + 1])

    def to_dict(self) -> dict[str, bytes]:
        return {
            "offsets": self.offsets.tobytes(),
            "targets": self.targets.tobytes(),
            "sources": self.sources or b"",
        }

    @classmethod
    def from_dict(cls, d: dict[str, bytes]) -> _Csr:
        return cls(_ints(d["offsets"]), _ints(d["targets"]), d["sources"] or None)

    @classmethod
    def from_rows(cls, rows: list[list[tuple[int, int]]]) -> _Csr:
        offsets, targets, sources = array("i", [0]), array("i"), bytearray()
        for row in rows:
            for target, src in row:
                targets.append(target)
                sources.append(src)
            offsets.append(len(targets))
        return cls(offsets, targets, bytes(sources))


def _ints(raw: bytes) -> array:
    a = array("i")
    a.frombytes(raw)
    return a


def _floats(raw: bytes) -> array:
    a = array("f")
    a.frombytes(raw)
    return a


class _NoGlobals(pickle.Unpickler):
    """Refuse any class or function reference: the KB is plain builtins only."""

    def find_class(self, module: str, name: str):  # type: ignore[no-untyped-def]
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a KB file")


class KnowledgeBase:
    """Read-only view over the columns of a built KB."""

    def __init__(self, cols: dict[str, object]) -> None:
        self.meta: dict[str, object] = cols["meta"]  # type: ignore[assignment]
        self.qids: list[str] = cols["qids"]  # type: ignore[assignment]
        self.label_en: list[str] = cols["label_en"]  # type: ignore[assignment]
        self.label_zh: list[str] = cols["label_zh"]  # type: ignore[assignment]
        self.label_es: list[str] = cols["label_es"]  # type: ignore[assignment]
        self.description: list[str] = cols["description"]  # type: ignore[assignment]
        self.prior = _floats(cols["prior"])  # type: ignore[arg-type]
        self.domains = _ints(cols["domains"])  # type: ignore[arg-type]
        self.rel = {name: _Csr.from_dict(cols["rel"][name]) for name in RELATIONS}  # type: ignore[index]
        self.alias_keys: list[str] = cols["alias_keys"]  # type: ignore[assignment]
        self.post = _Csr.from_dict(cols["postings"])  # type: ignore[arg-type]
        self.fold_keys: list[str] = cols["fold_keys"]  # type: ignore[assignment]
        self.fold_post = _Csr.from_dict(cols["fold_postings"])  # type: ignore[arg-type]
        self.index = {q: i for i, q in enumerate(self.qids)}
        self.alias_index = {k: i for i, k in enumerate(self.alias_keys)}
        self.fold_index = {k: i for i, k in enumerate(self.fold_keys)}
        self._closure_cache: dict[tuple[int, bool, bool], frozenset[int]] = {}
        self._buckets: dict[str, list[str]] | None = None
        self.readings: dict[str, str] = cols["readings"]  # type: ignore[assignment]
        self.sound_keys: list[str] = cols["sound_keys"]  # type: ignore[assignment]
        self.sound_post = _Csr.from_dict(cols["sound_postings"])  # type: ignore[arg-type]
        self.sound_index = {k: i for i, k in enumerate(self.sound_keys)}
        self.phonetic: str = cols["phonetic"]  # type: ignore[assignment]
        self._class_sets: dict[tuple[str, ...], frozenset[int]] = {}

    # -- entities ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.qids)

    def idx(self, qid: str) -> int | None:
        return self.index.get(qid)

    def has_labels(self, i: int) -> bool:
        return bool(self.label_en[i] or self.label_zh[i] or self.label_es[i])

    def neighbours(self, rel: str, i: int, sources: frozenset[str] | None = None) -> Iterator[int]:
        csr = self.rel[rel]
        for k in csr.row(i):
            if sources is not None and csr.sources and ISA_SOURCES[csr.sources[k]] not in sources:
                continue
            yield csr.targets[k]

    def edges(self, rel: str, i: int) -> Iterator[tuple[int, str]]:
        csr = self.rel[rel]
        for k in csr.row(i):
            yield csr.targets[k], (ISA_SOURCES[csr.sources[k]] if csr.sources else "wikidata")

    def domain_names(self, i: int) -> list[str]:
        bits = self.domains[i]
        return [name for b, name in enumerate(DOMAINS) if bits & (1 << b)]

    # -- aliases ----------------------------------------------------------------------------
    def exact(self, key: str) -> list[Posting]:
        k = self.alias_index.get(key)
        if k is None:
            return []
        return [Posting(self.post.targets[j], self.post.sources[j]) for j in self.post.row(k)]  # type: ignore[index]

    def folded(self, key: str) -> list[Posting]:
        """Postings of every alias key whose folded form (plural, accents) equals `key`."""
        f = self.fold_index.get(key)
        if f is None:
            return []
        out: list[Posting] = []
        for j in self.fold_post.row(f):
            out.extend(self.exact(self.alias_keys[self.fold_post.targets[j]]))
        return out

    def fuzzy_bucket(self, first: str) -> list[str]:
        """Alias keys sharing a first character: the search space of fuzzy matching."""
        if self._buckets is None:
            buckets: dict[str, list[str]] = {}
            for key in self.alias_keys:
                buckets.setdefault(key[:1], []).append(key)
            self._buckets = buckets
        return self._buckets.get(first, [])

    def sound_bucket(self, sound: str) -> list[str]:
        """Short Chinese alias keys whose sound key (linkers.pinyin) is `sound`: the search space of
        transliteration variants."""
        s = self.sound_index.get(sound)
        if s is None:
            return []
        return [self.alias_keys[self.sound_post.targets[j]] for j in self.sound_post.row(s)]

    # -- hierarchy --------------------------------------------------------------------------
    def ancestors(
        self, i: int, *, max_depth: int = 8, trusted_only: bool = True, stated_only: bool = False
    ) -> frozenset[int]:
        """Classes reachable through P31/P279/is-a edges (mixed, like INSTANCE_OF|SUBCLASS_OF*);
        `stated_only` leaves out types inferred from statement values."""
        key = (i, trusted_only, stated_only)
        hit = self._closure_cache.get(key)
        if hit is not None:
            return hit
        sources = STATED_ISA if stated_only else TRUSTED_ISA if trusted_only else None
        seen: set[int] = set()
        frontier = deque([(i, 0)])
        while frontier:
            node, depth = frontier.popleft()
            if depth >= max_depth:
                continue
            for rel in ("p31", "isa"):
                for parent in self.neighbours(rel, node, sources):
                    if parent not in seen and parent != i:
                        seen.add(parent)
                        frontier.append((parent, depth + 1))
        result = frozenset(seen)
        if len(self._closure_cache) > 200_000:
            self._closure_cache.clear()
        self._closure_cache[key] = result
        return result

    def places_above(self, i: int, *, max_depth: int = 6) -> list[int]:
        """Transitive LOCATED_IN parents (P131/P17), nearest first."""
        seen: dict[int, None] = {}
        frontier = deque([(i, 0)])
        while frontier:
            node, depth = frontier.popleft()
            if depth >= max_depth:
                continue
            for parent in self.neighbours("located", node):
                if parent not in seen and parent != i:
                    seen[parent] = None
                    frontier.append((parent, depth + 1))
        return list(seen)

    def class_set(self, classes: Iterable[str]) -> frozenset[int]:
        """Indices of the given QIDs that the KB knows (cached: predicates ask for the same sets)."""
        key = tuple(classes)
        hit = self._class_sets.get(key)
        if hit is None:
            hit = self._class_sets[key] = frozenset(self.index[q] for q in key if q in self.index)
        return hit

    def reaches(self, i: int, classes: Iterable[str]) -> bool:
        wanted = self.class_set(classes)
        return i in wanted or bool(wanted & self.ancestors(i))


# -- persistence ----------------------------------------------------------------------------
def save_columns(cols: dict[str, object], path: Path) -> int:
    """Write the columns atomically; returns the file size in bytes."""
    cols = {"format": FORMAT_VERSION, **cols}
    raw = pickle.dumps(cols, protocol=5)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(b"PKB1" + zlib.compress(raw, 9))
    os.replace(tmp, path)
    return path.stat().st_size


def load_kb(path: Path) -> KnowledgeBase:
    if not path.exists():
        raise KBError(f"knowledge base file {path} is missing; {REBUILD_HINT}")
    try:
        blob = path.read_bytes()
        if not blob.startswith(b"PKB1"):
            raise ValueError("bad magic header")
        cols = _NoGlobals(io.BytesIO(zlib.decompress(blob[4:]))).load()
        if not isinstance(cols, dict) or cols.get("format") != FORMAT_VERSION:
            raise ValueError(
                f"format {cols.get('format') if isinstance(cols, dict) else '?'} != {FORMAT_VERSION}"
            )
        return KnowledgeBase(cols)
    except (OSError, ValueError, KeyError, TypeError, EOFError, zlib.error, pickle.UnpicklingError) as exc:
        raise KBError(
            f"knowledge base file {path} is corrupt or incompatible ({exc}); {REBUILD_HINT}"
        ) from exc


_LOCK = threading.Lock()
_CACHE: dict[Path, KnowledgeBase] = {}
_RESOLVED: dict[Path, Path] = {}  # path as given → resolved, until reset_cache


_DEFAULT: list[Path] = [DEFAULT_KB_PATH]


def use_kb(path: Path | None) -> None:
    """Make `path` the process's default KB (None: the KB shipped in the package)."""
    _DEFAULT[0] = Path(path) if path else DEFAULT_KB_PATH


def kb_path() -> Path:
    return _DEFAULT[0]


def get_kb(path: Path | None = None) -> KnowledgeBase:
    """The process-wide KB, loaded lazily once per path (module-level cache)."""
    given = path or kb_path()
    target = _RESOLVED.get(given)
    if target is None:  # resolving is a few system calls: bulk linking asks for the KB per item
        target = _RESOLVED[given] = given.resolve()
    kb = _CACHE.get(target)
    if kb is None:
        with _LOCK:
            kb = _CACHE.get(target)
            if kb is None:
                kb = load_kb(target)
                _CACHE[target] = kb
    return kb


def reset_cache() -> None:
    """Forget loaded KBs (tests, or after `persona kb build` in the same process)."""
    with _LOCK:
        _CACHE.clear()
        _RESOLVED.clear()
