"""Configuration from the environment (``KHAALGA_*``); see the README table."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from connectors.config import BackendEndpoint, Timeouts
from gateway.rate_limit import DEFAULT_LIMITS
from schema.limits.config import OperationLimits

ROOT = Path(__file__).resolve().parent.parent


class SettingsError(Exception):
    pass


@dataclass(frozen=True)
class Settings:
    env: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    var_dir: Path = ROOT / "var"
    database_url: str = ""
    catalog_dir: Path = ROOT / "catalog"
    backends: Mapping[str, BackendEndpoint] = field(default_factory=dict)
    timeouts: Timeouts = field(default_factory=Timeouts)
    agency_concurrency: int = 20
    breaker_threshold: int = 5
    breaker_ttl: float = 30.0
    worker: bool = True
    delivery_poll: float = 0.2
    status_poll: float = 1.0
    max_attempts: int = 12
    lease_seconds: float = 30.0  # how long a delivery attempt owns its outbox row
    delivery_backoff: float = 1.0  # base of the exponential backoff between attempts
    otel_exporter: Literal["none", "console", "otlp"] = "none"
    log_format: Literal["json", "text"] = "json"
    rate_limits: str = DEFAULT_LIMITS
    # None: for each kind ``rate_limits`` limits, a cost budget in proportion.
    cost_limits: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "khaalga"
    oidc_issuer: str | None = None
    oidc_audience: str = "khaalga"
    oidc_min_refresh: float = 30.0
    max_body_bytes: int = 1_048_576
    response_cache_bytes: int = 32 * 2**20  # catalog answers kept; 0 turns the cache off
    limits: OperationLimits = field(default_factory=OperationLimits)
    introspection: bool | None = None  # None: on in development only
    graphiql: bool | None = None  # None: on in development only
    trusted_documents: Literal["off", "apq", "allowlist"] = "apq"
    trusted_documents_file: Path | None = None
    apq_ttl: int = 86_400  # seconds an APQ registration is kept in Redis
    # Developer program (auth/apps): the gateway's own OAuth issuer.
    issuer_url: str | None = None  # None: http://127.0.0.1:<port> in development, off otherwise
    issuer_key_file: Path | None = None  # None: a key under var/keys in development, off otherwise
    token_lifetime: int = 900  # seconds an app's access token lives
    app_cache_seconds: float = 5.0  # how stale an app's status may be when its token is checked

    def __post_init__(self) -> None:
        if not self.database_url:
            object.__setattr__(
                self, "database_url", f"sqlite+aiosqlite:///{self.var_dir / 'khaalga.sqlite'}"
            )

    @property
    def development(self) -> bool:
        return self.env == "development"

    @property
    def introspection_enabled(self) -> bool:
        return self.development if self.introspection is None else self.introspection

    @property
    def issuer(self) -> str | None:
        """The gateway's own issuer URL (developer program)."""
        if self.issuer_url:
            return self.issuer_url.rstrip("/")
        return f"http://127.0.0.1:{self.port}" if self.development else None

    @property
    def graphiql_enabled(self) -> bool:
        return self.development if self.graphiql is None else self.graphiql


def _backends(environ: Mapping[str, str]) -> dict[str, BackendEndpoint]:
    """``KHAALGA_BACKEND_<AGENCY>_URL`` (+ ``_API_KEY``, ``_ACCESS_TOKEN``, ``_SIGNING_KEY``)."""
    endpoints = {}
    for key, url in environ.items():
        if key.startswith("KHAALGA_BACKEND_") and key.endswith("_URL"):
            code = key.removeprefix("KHAALGA_BACKEND_").removesuffix("_URL")
            signing = environ.get(f"KHAALGA_BACKEND_{code}_SIGNING_KEY")
            endpoints[code] = BackendEndpoint(
                url=url,
                api_key=environ.get(f"KHAALGA_BACKEND_{code}_API_KEY"),
                access_token=environ.get(f"KHAALGA_BACKEND_{code}_ACCESS_TOKEN"),
                signing_key=Path(signing) if signing else None,
            )
    return endpoints


_EXPORTERS = ("none", "console", "otlp")
_LOG_FORMATS = ("json", "text")


def _choice(environ: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """The variable's value, which must be one of ``choices`` (the first is the default)."""
    value = environ.get(name, choices[0])
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}")
    return value


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    try:
        value = int(environ.get(name, default))
    except ValueError as exc:
        raise SettingsError(f"{name} must be a whole number") from exc
    if value < 0:
        raise SettingsError(f"{name} must not be negative")
    return value


def _positive(environ: Mapping[str, str], name: str, default: int) -> int:
    value = _int(environ, name, default)
    if value == 0:
        raise SettingsError(f"{name} must be at least 1")
    return value


def _flag(environ: Mapping[str, str], name: str) -> bool | None:
    value = environ.get(name, "").strip().lower()
    if not value:
        return None
    if value not in ("1", "true", "yes", "0", "false", "no"):
        raise SettingsError(f"{name} must be 1 or 0")
    return value in ("1", "true", "yes")


def _limits(environ: Mapping[str, str]) -> OperationLimits:
    """``KHAALGA_MAX_DEPTH``, ``_ALIASES``, ``_ROOT_FIELDS``, ``_TOKENS``, ``_DIRECTIVES``,
    ``_FIELD_REPEATS``, ``_DOCUMENT_BYTES``, ``_COST``, ``_SECONDS`` and
    ``KHAALGA_DEFAULT_LIST_SIZE``."""
    default = OperationLimits()
    return OperationLimits(
        depth=_int(environ, "KHAALGA_MAX_DEPTH", default.depth),
        aliases=_int(environ, "KHAALGA_MAX_ALIASES", default.aliases),
        root_fields=_int(environ, "KHAALGA_MAX_ROOT_FIELDS", default.root_fields),
        tokens=_int(environ, "KHAALGA_MAX_TOKENS", default.tokens),
        directives=_int(environ, "KHAALGA_MAX_DIRECTIVES", default.directives),
        field_repeats=_int(environ, "KHAALGA_MAX_FIELD_REPEATS", default.field_repeats),
        document_bytes=_int(environ, "KHAALGA_MAX_DOCUMENT_BYTES", default.document_bytes),
        cost=_int(environ, "KHAALGA_MAX_COST", default.cost),
        seconds=_int(environ, "KHAALGA_MAX_SECONDS", default.seconds),
        default_list_size=_int(environ, "KHAALGA_DEFAULT_LIST_SIZE", default.default_list_size),
    )


def _seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    try:
        value = float(environ.get(name, default))
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number of seconds") from exc
    if not value > 0 or value == float("inf"):
        raise SettingsError(f"{name} must be a positive number of seconds")
    return value


_TRUST_MODES = ("apq", "off", "allowlist")


def from_env(environ: Mapping[str, str] = os.environ) -> Settings:
    env = environ.get("KHAALGA_ENV", "development")
    if env not in ("development", "production"):
        raise SettingsError("KHAALGA_ENV must be development or production")
    try:
        port = int(environ.get("KHAALGA_PORT", "8000"))
    except ValueError as exc:
        raise SettingsError("KHAALGA_PORT must be a number") from exc
    var_dir = Path(environ.get("KHAALGA_VAR_DIR", str(ROOT / "var")))
    return Settings(
        env=env,  # type: ignore[arg-type]  # checked above
        host=environ.get("KHAALGA_HOST", "127.0.0.1"),
        port=port,
        var_dir=var_dir,
        database_url=environ.get("KHAALGA_DATABASE_URL", ""),
        catalog_dir=Path(environ.get("KHAALGA_CATALOG_DIR", str(ROOT / "catalog"))),
        backends=_backends(environ),
        worker=environ.get("KHAALGA_WORKER", "1") not in ("0", "false", "no"),
        otel_exporter=_choice(environ, "KHAALGA_OTEL_EXPORTER", _EXPORTERS),  # type: ignore[arg-type]
        log_format=_choice(environ, "KHAALGA_LOG_FORMAT", _LOG_FORMATS),  # type: ignore[arg-type]
        rate_limits=environ.get("KHAALGA_RATE_LIMITS", DEFAULT_LIMITS),
        cost_limits=environ.get("KHAALGA_COST_LIMITS"),
        redis_url=environ.get("KHAALGA_REDIS_URL") or None,
        redis_prefix=environ.get("KHAALGA_REDIS_PREFIX", "khaalga"),
        lease_seconds=_seconds(environ, "KHAALGA_LEASE_SECONDS", 30.0),
        oidc_issuer=environ.get("KHAALGA_OIDC_ISSUER") or None,
        oidc_audience=environ.get("KHAALGA_OIDC_AUDIENCE", "khaalga"),
        max_body_bytes=_int(environ, "KHAALGA_MAX_BODY_BYTES", 1_048_576),
        response_cache_bytes=_int(environ, "KHAALGA_RESPONSE_CACHE_BYTES", 32 * 2**20),
        limits=_limits(environ),
        introspection=_flag(environ, "KHAALGA_INTROSPECTION"),
        graphiql=_flag(environ, "KHAALGA_GRAPHIQL"),
        trusted_documents=_choice(environ, "KHAALGA_TRUSTED_DOCUMENTS", _TRUST_MODES),  # type: ignore[arg-type]
        trusted_documents_file=_path(environ.get("KHAALGA_TRUSTED_DOCUMENTS_FILE")),
        apq_ttl=_positive(environ, "KHAALGA_APQ_TTL", 86_400),
        issuer_url=environ.get("KHAALGA_ISSUER_URL") or None,
        issuer_key_file=_path(environ.get("KHAALGA_ISSUER_KEY_FILE")),
        token_lifetime=_int(environ, "KHAALGA_TOKEN_LIFETIME", 900),
        app_cache_seconds=_int(environ, "KHAALGA_APP_CACHE_SECONDS", 5),
    )


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None
