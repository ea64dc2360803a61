"""Configuration from environment variables (pydantic-settings), one model for every process."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


# Where `onewindow dev` writes the broker's and the database's addresses (and its tokens) while it
# runs, for every other `onewindow` command started in the project (relative to the working directory).
DEV_ENV = Path(".onewindow") / "dev.env"


class Settings(BaseSettings):
    """Settings read from `ONEWINDOW_*` variables plus the conventional unprefixed ones."""

    model_config = SettingsConfigDict(env_prefix="ONEWINDOW_", extra="ignore")

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "ONEWINDOW_KAFKA_BOOTSTRAP_SERVERS"),
    )
    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/postgres",
        validation_alias=AliasChoices("DATABASE_URL", "ONEWINDOW_DATABASE_URL"),
    )
    # Security (production): SASL/SCRAM per service principal; the password from env or a file.
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_username: str | None = None
    kafka_password: SecretStr | None = None
    kafka_password_file: Path | None = None
    # Tansu answers a fetch only after its full wait (DESIGN.md): short for latency and throughput. An
    # idle consumer then polls 50 times a second (~60 ms of CPU a second per service at rest, the broker
    # ~290); 50 ms halves that but measured worse: saturation 176 against 298 cases/s, dispatch p99 at
    # 50 cases/s 1.6 s against 0.2 s (docs/drills.md, "Cost per case").
    fetch_max_wait_ms: int = 20
    batch_max_records: int = 500
    batch_timeout_ms: int = 50
    topic_partitions: int = 3
    # How fast a crashed consumer's partitions move to a live one (Kafka's minimum is 6 s).
    consumer_session_timeout_ms: int = 10_000
    consumer_heartbeat_interval_ms: int = 3_000
    db_pool_min: int = 1
    db_pool_max: int = 8
    outbox_batch: int = 500
    outbox_poll_seconds: float = 1.0
    # How often clients refresh metadata: a consumer sees recreated topics (a broker that came back
    # empty) or new partitions within this time, not the client default of five minutes.
    kafka_metadata_max_age_ms: int = Field(default=10_000, ge=1_000)
    # After the broker comes back empty (Tansu keeps nothing), events published this recently are
    # published again; consumers' inboxes drop the ones they had applied.
    outbox_redeliver_seconds: float = Field(default=3600.0, ge=0)
    retry_attempts: int = 3
    retry_backoff_seconds: float = 0.2
    # Identity: bearer JWTs from the city's identity provider (an OpenID Connect issuer such as
    # Keycloak), verified against its JWKS. No issuer configured: the HTTP APIs refuse to start.
    auth_issuer: str | None = None
    auth_audience: str = "onewindow"
    auth_jwks_url: str | None = None  # e.g. https://idp.example/realms/city/protocol/openid-connect/certs
    auth_jwks_file: Path | None = None
    auth_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "PS256", "EdDSA"])
    auth_leeway_seconds: int = Field(default=30, ge=0, le=300)
    # where the grant is in the claims (dotted paths; Keycloak: realm_access.roles)
    auth_role_claim: str = "role"
    auth_divisions_claim: str = "divisions"
    auth_unit_claim: str = "unit"
    auth_grid_claim: str = "grid"  # a grid worker's grid; without it, the grid directory's worker → grid
    supervision_interval_seconds: float = 15
    # Audit checkpoints: HMAC key (keep it outside the database) and how often to sign chain heads.
    # No built-in default: audit refuses to start without a key (`onewindow dev` makes one for itself).
    audit_signing_key: SecretStr | None = None
    audit_signing_key_file: Path | None = None
    audit_key_id: str = "dev"
    audit_checkpoint_seconds: float = 300
    # Audit's live feed: concurrent connections per process; more are answered 503 with Retry-After.
    feed_max_connections: int = Field(default=50, ge=1)
    duplicate_window_hours: float = 72
    duplicate_threshold: float = 0.6
    log_level: str = "INFO"
    # A span per SQL statement (opentelemetry-instrumentation-asyncpg): off by default, a cost on every
    # statement; a sampled case's batch span already times its transaction.
    trace_sql: bool = False
    # --- database logins, timeouts and intake's back-pressure (docs/deployment.md: "PostgreSQL logins")
    # The schema owner: only migrations (and the grants after them) log in with it; default database_url.
    migration_database_url: str | None = Field(
        None, validation_alias=AliasChoices("MIGRATION_DATABASE_URL", "ONEWINDOW_MIGRATION_DATABASE_URL"))
    # True: each service logs in as its own role onewindow_<service>, at database_url's server and
    # database without a password (trust, peer or ~/.pgpass: tests, `onewindow dev`, drills); False: as
    # database_url's user (set a per-service DATABASE_URL, as compose does).
    database_login_per_service: bool = False
    db_acquire_timeout_seconds: float = Field(default=5.0, gt=0)  # then 503 + Retry-After, not a hang
    db_statement_timeout_ms: int = Field(default=30_000, ge=0)  # 0 = none
    intake_queue_max: int = Field(default=1000, ge=1)  # HTTP submissions waiting for the writer; then 503
    # 申请重办: how long after closure a citizen may ask (the router's catalogue decides in the end)
    intake_reopen_window_days: int = Field(default=15, ge=0, le=365)
    # --- the operator console (docs/console.md). It is served by audit and calls router and intake on
    # their own origins: those services answer CORS for these origins only (none: no cross-origin calls).
    console_origins: list[str] = Field(default_factory=list)
    console_router_url: str | None = None  # as the operator's browser reaches it
    console_intake_url: str | None = None
    console_jaeger_url: str | None = None  # trace ids link to <url>/trace/<id> when set
    # Sign-in: OpenID Connect authorization code + PKCE with the identity provider (a public client);
    # the endpoints default to the issuer's discovery document when only the client id is set.
    console_oidc_client_id: str | None = None
    console_oidc_authorization_endpoint: str | None = None
    console_oidc_token_endpoint: str | None = None
    # Development only: a token form (and #token= sign-in links). Never on in production.
    console_dev_signin: bool = False

    def kafka_client_options(self) -> dict[str, object]:
        """Keyword arguments for every aiokafka client (producer, consumer, admin)."""
        if self.kafka_security_protocol == "PLAINTEXT":
            return {}
        password = self.kafka_password.get_secret_value() if self.kafka_password else None
        if password is None and self.kafka_password_file:
            password = self.kafka_password_file.read_text(encoding="utf-8").strip()
        if not self.kafka_username or not password:
            raise ValueError("SASL needs ONEWINDOW_KAFKA_USERNAME and a password (or password file)")
        return {"security_protocol": self.kafka_security_protocol, "sasl_mechanism": self.kafka_sasl_mechanism,
                "sasl_plain_username": self.kafka_username, "sasl_plain_password": password}

    def signing_key(self) -> bytes:
        """The audit checkpoints' HMAC key, from the variable or the file; refuses when there is none."""
        if self.audit_signing_key is not None and self.audit_signing_key.get_secret_value():
            return self.audit_signing_key.get_secret_value().encode()
        if self.audit_signing_key_file is not None:
            key = self.audit_signing_key_file.read_text(encoding="utf-8").strip()
            if key:
                return key.encode()
        raise ValueError("no audit signing key: set ONEWINDOW_AUDIT_SIGNING_KEY or ONEWINDOW_AUDIT_SIGNING_KEY_FILE "
                         "(there is no built-in default; keep the key outside the database)")


def tool_settings() -> Settings:
    """Settings for the `onewindow` tools run in the project: explicit variables first, then the
    addresses `onewindow dev` wrote for the stack it runs (DEV_ENV), then the defaults."""
    return Settings(_env_file=DEV_ENV if DEV_ENV.is_file() else None)
