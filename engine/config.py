"""Engine settings: the one place that reads the environment.

Every `PERSONA_*` variable is read here, once, into a nested `Settings` (`llm`, `api`, `db`,
`review`, `worker`, `export`, `kb`, `data`). Stages, backends, the store, the API and the CLI take the part they need
as explicit arguments; CLI options override fields with `Settings.from_env(**overrides)` and never
write back into the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, Field

DEFAULT_HOME = Path(".persona")
REPO_ROOT = Path(__file__).resolve().parents[1]


class ConfigError(ValueError):
    """A setting has a value the engine cannot use (names the variable)."""


class LLMSettings(BaseModel):
    """The LLM extractor tier and its backends (engine/extract)."""

    backend: str = "llama_cpp"  # llama_cpp | openai | transformers
    model_path: Path | None = None  # llama_cpp: a GGUF file instead of the bundled model
    threads: int | None = None  # llama_cpp: default all cores the process may use
    base_url: str = "http://127.0.0.1:8000/v1"  # openai
    model: str = "Qwen/Qwen2.5-7B-Instruct"  # openai
    api_key: str | None = None  # openai (PERSONA_LLM_API_KEY, else OPENAI_API_KEY)
    response_format: str = "json_schema"  # openai: json_schema | json_object
    hf_model_dir: Path | None = None  # transformers
    hf_device: str | None = None  # transformers: default cuda when available
    alert_rules: Path | None = None  # escalation rules YAML instead of the packaged one


DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
WILDCARD_BINDS = {"0.0.0.0", "::", "*"}  # noqa: S104 - names to recognise, not to bind


class ApiSettings(BaseModel):
    """The HTTP API (engine/api)."""

    token: str | None = None  # the single token (PERSONA_API_TOKEN); its holder is named "api"
    # Named tokens (PERSONA_API_TOKENS="alice:tok1,bob:tok2"): the name is recorded with every review
    # judgement, so each reviewer gets their own token.
    tokens: dict[str, str] = Field(default_factory=dict)
    # Request bodies above this are refused with 413 before the handler reads them.
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    # /cypher: rows returned at most (the rest is cut and flagged) and the database-side timeout.
    cypher_max_rows: int = Field(default=1000, ge=1)
    cypher_timeout_ms: int = Field(default=10_000, ge=1)
    # /users/{id}/graph: context parents drawn per entity, so a hub (a country) stays readable.
    graph_context_per_entity: int = Field(default=8, ge=0)
    # /segments/{id}/members page size cap.
    max_page: int = Field(default=1000, ge=1)
    # Host header names served (DNS rebinding protection); "*.example.org" allows subdomains, "*"
    # any host. The bind host is added by with_bind_host().
    allowed_hosts: list[str] = Field(default_factory=lambda: list(DEFAULT_HOSTS), min_length=1)

    def with_bind_host(self, host: str) -> ApiSettings:
        """These settings with the interface the server binds added to the allowed hosts (a
        wildcard bind such as 0.0.0.0 names no host: list the public names in allowed_hosts)."""
        name = host.strip().strip("[]").lower()
        if not name or name in WILDCARD_BINDS or name in self.allowed_hosts:
            return self
        return self.model_copy(update={"allowed_hosts": [*self.allowed_hosts, name]})


class DBSettings(BaseModel):
    """Persistence and limits of the embedded FalkorDB (applied at start, also to a running one)."""

    # Rewrite the append-only log as one snapshot once it grew this many percent over the last
    # snapshot (0 turns it off)...
    aof_rewrite_percentage: int = Field(default=50, ge=0)
    # ...and is at least this big. Replay re-runs every logged query (seconds per MB), loading a
    # snapshot costs almost nothing, so the un-compacted tail stays short.
    aof_rewrite_min_size_mb: int = Field(default=4, ge=1)
    # Per-query memory cap (FalkorDB QUERY_MEM_CAPACITY); 0 = unlimited.
    query_mem_capacity_mb: int = Field(default=1024, ge=0)
    # A starting server is waited for while it makes progress; this long without any, start fails.
    start_stall_s: float = Field(default=120.0, gt=0)
    # After a bulk ingest of at least this many items, compact the log in the background.
    compact_after_items: int = Field(default=10_000, ge=0)


class WorkerSettings(BaseModel):
    """Scale-out ingest (engine/distributed): Celery workers, their broker and the job records."""

    # Any Redis (redis://host:6379/0) or RabbitMQ (amqp://...) for a cluster. None: the embedded
    # Redis under the persona home, logical database 1 (the graph lives in database 0).
    broker_url: str | None = None
    # Job records (progress, per-batch reports, dead letters) and Celery results: a Redis. None: the
    # broker when it is a Redis, else the embedded Redis database 1.
    result_backend: str | None = None
    queue: str = "persona"  # default queue name `persona worker` consumes and `--queue` sends to
    # Users are hashed into this many partitions; one lock per partition keeps two workers from
    # fusing the same user's facts at once. Every producer and worker of a cluster must agree.
    partitions: int = Field(default=16, ge=1)
    # Transient store / LLM failures: retried with exponential backoff, then dead-lettered.
    max_retries: int = Field(default=5, ge=0)
    retry_backoff_s: float = Field(default=2.0, gt=0)
    retry_backoff_max_s: float = Field(default=300.0, gt=0)
    # A message a worker took but never acknowledged (it died) goes back to the queue after this.
    # It must exceed the longest batch: a copy delivered while the first still runs waits on the
    # partition lock and then finds its batch done.
    visibility_timeout_s: int = Field(default=3600, ge=1)
    restore_interval_s: float = Field(default=10.0, gt=0)  # how often workers look for such messages
    # Partition lock lifetime, renewed every third of it while its batch runs: a dead holder's lock
    # frees after this, and its batch is sent again about half of it later (engine/distributed/recovery.py).
    lock_ttl_s: float = Field(default=20.0, gt=0)
    recover_interval_s: float = Field(default=5.0, gt=0)  # how often each worker looks for such batches
    job_ttl_days: float = Field(default=14.0, gt=0)  # job records expire this long after creation


class ReviewSettings(BaseModel):
    """The review loop (engine/review): quality intervals and the drift alert."""

    # Alert when a batch's fact F1 is more than this many points (0-100) below the previous batch's
    # interval (its lower bound).
    alert_points: float = Field(default=5.0, ge=0, le=100)
    confidence: float = Field(default=0.95, gt=0, lt=1)  # level of every interval
    bootstrap: int = Field(default=1000, ge=100)  # resamples for F1 / macro-F1 intervals


class ExportSettings(BaseModel):
    """Audience exports (engine/export)."""

    salt: str | None = None  # HMAC salt for hashed ids


class KBSettings(BaseModel):
    """The Wikidata knowledge base (linkers)."""

    path: Path | None = None  # None: the KB shipped in the package


class DataSettings(BaseModel):
    """Where the real external data for `persona eval` and `persona kb build` lives."""

    root: Path = REPO_ROOT.parent / "shared" / "data"
    wikidata: Path | None = None  # default root / "wikidata"
    entity_linking: Path | None = None  # default root / "entity_linking"

    def wikidata_dir(self) -> Path:
        return self.wikidata or self.root / "wikidata"

    def entity_linking_dir(self) -> Path:
        return self.entity_linking or self.root / "entity_linking"


class Settings(BaseModel):
    home: Path = DEFAULT_HOME
    # "embedded" = the FalkorDB child process; falkordb://host:port; neo4j://, bolt://, neo4j+s://
    graph_uri: str = "embedded"
    graph_name: str = "persona"
    neo4j_user: str = "neo4j"
    neo4j_password: str = "neo4j"  # noqa: S105 - Neo4j's own default; set PERSONA_NEO4J_PASSWORD
    neo4j_database: str | None = None
    allow_sensitive: bool = False
    store_text: bool = True
    # Extractor tier for free text: cascade (encoder, LLM for the unsure), encoder or llm.
    extractor: str = "cascade"
    # Joined LLM model files: shared by every persona home on the machine (1 GB, not per home).
    model_cache: Path = Path.home() / ".cache" / "persona-engine" / "models"
    llm: LLMSettings = Field(default_factory=LLMSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    db: DBSettings = Field(default_factory=DBSettings)
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    export: ExportSettings = Field(default_factory=ExportSettings)
    kb: KBSettings = Field(default_factory=KBSettings)
    data: DataSettings = Field(default_factory=DataSettings)

    @property
    def extraction_cache_path(self) -> Path:
        return Path(self.home) / "extraction_cache.sqlite"

    @property
    def exports_dir(self) -> Path:
        return Path(self.home) / "exports"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from `env` (default: the process environment); non-None overrides win."""
        values = _read(os.environ if env is None else env)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)


# --- reading the environment ---------------------------------------------------------------


def _text(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    return raw.strip() if raw and raw.strip() else None


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _text(env, name)
    if raw is None:
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}={raw!r}: use 1/0, true/false, yes/no or on/off")


def _int(env: Mapping[str, str], name: str) -> int | None:
    raw = _text(env, name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a whole number") from None


def _float(env: Mapping[str, str], name: str) -> float | None:
    raw = _text(env, name)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a number") from None


def _named_tokens(env: Mapping[str, str], name: str) -> dict[str, str] | None:
    """`alice:tok1,bob:tok2` → {"alice": "tok1", "bob": "tok2"}."""
    items = _list(env, name)
    if items is None:
        return None
    out: dict[str, str] = {}
    for item in items:
        who, sep, token = item.partition(":")
        if not sep or not who.strip() or not token.strip():
            raise ConfigError(f"{name}: {item.split(':')[0]!r}… is not name:token")
        if who.strip() in out:
            raise ConfigError(f"{name}: the name {who.strip()!r} is given twice")
        out[who.strip()] = token.strip()
    return out


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = _text(env, name)
    return Path(raw).expanduser() if raw else None


def _list(env: Mapping[str, str], name: str) -> list[str] | None:
    raw = _text(env, name)
    return [item.strip() for item in raw.split(",") if item.strip()] if raw else None


def _drop_none(values: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in values.items() if v is not None}


def _read(env: Mapping[str, str]) -> dict[str, object]:
    llm = _drop_none({
        "backend": _text(env, "PERSONA_LLM_BACKEND"),
        "model_path": _path(env, "PERSONA_LLM_MODEL_PATH"),
        "threads": _int(env, "PERSONA_LLM_THREADS"),
        "base_url": _text(env, "PERSONA_LLM_BASE_URL"),
        "model": _text(env, "PERSONA_LLM_MODEL"),
        "api_key": _text(env, "PERSONA_LLM_API_KEY") or _text(env, "OPENAI_API_KEY"),
        "response_format": _text(env, "PERSONA_LLM_RESPONSE_FORMAT"),
        "hf_model_dir": _path(env, "PERSONA_HF_MODEL_DIR"),
        "hf_device": _text(env, "PERSONA_HF_DEVICE"),
        "alert_rules": _path(env, "PERSONA_ALERT_RULES"),
    })
    api = _drop_none({
        "token": _text(env, "PERSONA_API_TOKEN"),
        "tokens": _named_tokens(env, "PERSONA_API_TOKENS"),
        "max_body_bytes": _int(env, "PERSONA_API_MAX_BODY_BYTES"),
        "cypher_max_rows": _int(env, "PERSONA_API_CYPHER_MAX_ROWS"),
        "cypher_timeout_ms": _int(env, "PERSONA_API_CYPHER_TIMEOUT_MS"),
        "allowed_hosts": _list(env, "PERSONA_API_ALLOWED_HOSTS"),
    })
    data = _drop_none({
        "root": _path(env, "PERSONA_DATA_DIR"),
        "wikidata": _path(env, "PERSONA_WIKIDATA_DIR"),
        "entity_linking": _path(env, "PERSONA_EL_DATA_DIR"),
    })
    return _drop_none({
        "home": _path(env, "PERSONA_HOME"),
        "graph_uri": _text(env, "PERSONA_GRAPH_URI"),
        "graph_name": _text(env, "PERSONA_GRAPH_NAME"),
        "neo4j_user": _text(env, "PERSONA_NEO4J_USER"),
        "neo4j_password": _text(env, "PERSONA_NEO4J_PASSWORD"),
        "neo4j_database": _text(env, "PERSONA_NEO4J_DATABASE"),
        "allow_sensitive": _flag(env, "PERSONA_ALLOW_SENSITIVE", False),
        "store_text": _flag(env, "PERSONA_STORE_TEXT", True),
        "extractor": _text(env, "PERSONA_EXTRACTOR"),
        "model_cache": _path(env, "PERSONA_MODEL_CACHE"),
        "llm": llm,
        "api": api,
        "review": _drop_none({
            "alert_points": _float(env, "PERSONA_REVIEW_ALERT_POINTS"),
            "confidence": _float(env, "PERSONA_REVIEW_CONFIDENCE"),
            "bootstrap": _int(env, "PERSONA_REVIEW_BOOTSTRAP"),
        }),
        "export": _drop_none({"salt": _text(env, "PERSONA_EXPORT_SALT")}),
        "db": _drop_none({
            "aof_rewrite_percentage": _int(env, "PERSONA_DB_AOF_REWRITE_PERCENT"),
            "aof_rewrite_min_size_mb": _int(env, "PERSONA_DB_AOF_REWRITE_MIN_MB"),
            "query_mem_capacity_mb": _int(env, "PERSONA_DB_QUERY_MEM_MB"),
            "start_stall_s": _float(env, "PERSONA_DB_START_STALL_S"),
            "compact_after_items": _int(env, "PERSONA_DB_COMPACT_AFTER"),
        }),
        "worker": _drop_none({
            "broker_url": _text(env, "PERSONA_BROKER_URL"),
            "result_backend": _text(env, "PERSONA_RESULT_BACKEND"),
            "queue": _text(env, "PERSONA_WORKER_QUEUE"),
            "partitions": _int(env, "PERSONA_WORKER_PARTITIONS"),
            "max_retries": _int(env, "PERSONA_WORKER_MAX_RETRIES"),
            "retry_backoff_s": _float(env, "PERSONA_WORKER_RETRY_BACKOFF_S"),
            "retry_backoff_max_s": _float(env, "PERSONA_WORKER_RETRY_BACKOFF_MAX_S"),
            "visibility_timeout_s": _int(env, "PERSONA_WORKER_VISIBILITY_TIMEOUT_S"),
            "restore_interval_s": _float(env, "PERSONA_WORKER_RESTORE_INTERVAL_S"),
            "lock_ttl_s": _float(env, "PERSONA_WORKER_LOCK_TTL_S"),
            "recover_interval_s": _float(env, "PERSONA_WORKER_RECOVER_INTERVAL_S"),
            "job_ttl_days": _float(env, "PERSONA_JOB_TTL_DAYS"),
        }),
        "kb": _drop_none({"path": _path(env, "PERSONA_KB_PATH")}),
        "data": data,
    })
