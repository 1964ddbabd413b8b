"""The one settings module: every knob is an environment variable prefixed ``SPENDSTREAM_``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cached_property, lru_cache
from pathlib import Path

from pydantic import AwareDatetime, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.transaction import TimestampWindow


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPENDSTREAM_", env_file=".env", extra="ignore")

    # Infrastructure. Unset bootstrap or database URL: `spendstream up` starts embedded ones.
    kafka_bootstrap: str | None = Field(
        None, description="Kafka bootstrap servers, host:port[,...]"
    )
    kafka_idempotent_producer: bool = Field(
        False, description="Enable the idempotent producer (the embedded tansu broker lacks it)"
    )
    kafka_request_timeout_ms: int = Field(5_000, ge=500)
    database_url: str | None = Field(None, description="PostgreSQL URL, postgresql://...")
    database_pool_size: int = Field(8, ge=1, le=100)
    data_dir: Path = Field(Path(".spendstream"), description="Where embedded services keep data")
    embedded_kafka_port: int = 9092
    embedded_postgres_port: int = 5433

    # Secrets.
    webhook_secret: SecretStr | None = Field(None, description="Installation-wide webhook HMAC key")
    model_signing_key: SecretStr | None = Field(
        None,
        description="Key that signs anomaly models in the registry; a scorer loads no model it "
        "cannot verify. Unset: each scorer makes its own, and trusts only what it trained "
        "(`spendstream up` keeps one per data directory)",
    )

    # HTTP services.
    host: str = "127.0.0.1"
    api_port: int = 8000
    ingest_port: int = 8001
    scorer_port: int = 8002
    forecaster_port: int = 8003
    max_body_bytes: int = Field(
        16 * 1024 * 1024, description="Largest request body ingest reads, on any route"
    )
    api_max_body_bytes: int = Field(
        64 * 1024, description="Largest request body the query API reads, on any route"
    )
    max_batch_items: int = Field(10_000, ge=1)
    timestamp_earliest: AwareDatetime = Field(
        datetime(1970, 1, 1, tzinfo=UTC),
        description="Ingest rejects transactions dated before this (422 naming the field)",
    )
    timestamp_max_ahead_hours: float = Field(
        24.0, ge=0, description="...and those dated more than this many hours ahead of its clock"
    )
    ingest_rate_limit: str = Field(
        "2000/second", description="Requests per API key and ingest process (`limits` notation)"
    )
    api_rate_limit: str = Field(
        "100/second", description="Requests per API key and query API process"
    )
    chart_render_concurrency: int = Field(
        2, ge=1, description="PNG/SVG charts rendered at once per query API process"
    )
    api_key_cache_seconds: float = Field(
        30.0,
        ge=0,
        description="How long a verified key is trusted before the database is asked again",
    )

    # Topics.
    transactions_topic: str = "transactions.v1"
    transactions_partitions: int = Field(6, ge=1)
    alerts_topic: str = "alerts.anomalies.v1"
    drift_topic: str = "drift.events.v1"
    forecasts_topic: str = "forecasts.updated.v1"
    dlq_topic: str = "transactions.dlq.v1"
    budget_alerts_topic: str = "budgets.alerts.v1"

    # Consumers.
    scorer_batch_size: int = Field(500, ge=1)
    scorer_group_id: str = Field(
        "scorer", description="Consumer group of the scorers; all scorers of a deployment share it"
    )
    forecaster_batch_size: int = Field(1_000, ge=1)
    forecaster_group_id: str = Field("forecaster", description="Consumer group of the forecasters")
    consumer_retry_max_seconds: float = Field(
        30.0, gt=0, description="Longest backoff between retries of a failed database write"
    )
    consumer_retry_give_up_seconds: float = Field(
        120.0,
        ge=0,
        description="How long a consumer retries a database write before it rewinds the batch "
        "and reads it again",
    )
    anomaly_threshold: float = Field(
        0.97, ge=0, le=1, description="Ensemble score from which a transaction is an anomaly"
    )
    scorer_seed: int = 0
    live_alert_within_hours: float = Field(
        72,
        gt=0,
        description="A transaction ingested more than this long after it happened (an import, "
        "a backfill) is scored but raises no live alert",
    )
    history_per_account: int = Field(
        256, ge=16, description="Window of past transactions the features of an account look at"
    )
    max_accounts_in_memory: int = Field(20_000, ge=100)
    retrain_interval_s: float = Field(3600, gt=0, description="Retrain at least this often")
    retrain_after_transactions: int = Field(5_000, ge=1, description="...or after this many new")
    min_training_rows: int = Field(1_000, ge=200)
    training_max_rows: int = Field(50_000, ge=200)
    legit_feedback_weight: int = Field(10, ge=1, description="Weight of rows labelled legit")
    model_check_interval_s: float = Field(
        5.0, gt=0, description="How often scorers look for a new model"
    )

    # Drift.
    drift_window_mode: str = Field("time", pattern="^(time|count)$", description="time or count")
    drift_current_days: float = Field(7, gt=0)
    drift_reference_days: float = Field(28, gt=0)
    drift_current_events: int = Field(200, ge=10, description="Current window, count mode")
    drift_reference_events: int = Field(800, ge=10, description="Reference window, count mode")
    drift_interval_hours: float = Field(
        24, gt=0, description="At most one computation per scope per this much event time"
    )
    drift_threshold: float = Field(0.1, gt=0, le=1, description="JSD at which drift is reported")
    drift_min_events: int = Field(30, ge=1, description="Smaller windows are insufficient")
    drift_check_interval_s: float = Field(10.0, gt=0, description="How often to look for new data")

    # Forecasts.
    forecast_horizon_days: int = Field(30, ge=1, le=366)
    forecast_refresh_interval_s: float = Field(
        6 * 3600, gt=0, description="Refresh at least this often"
    )
    forecast_refresh_after_transactions: int = Field(
        2_000, ge=1, description="...or after this many new"
    )
    forecast_check_interval_s: float = Field(
        10.0, gt=0, description="How often to look for users whose forecasts are out of date"
    )
    budget_check_interval_s: float = Field(
        10.0, gt=0, description="How often the forecaster checks budgets for alerts to raise"
    )
    forecast_backtest_folds: int = Field(3, ge=1, le=10)
    forecast_min_days: int = Field(60, ge=35, description="Days of history before the first run")
    forecast_max_training_rows: int = Field(400_000, ge=1_000)

    # Semantic categories.
    categorize_min_confidence: float = Field(
        0.45, ge=0, le=1, description="Below this a predicted category is not applied"
    )
    categorize_index_size: int = Field(
        5_000, ge=10, description="Labelled merchants in the kNN index"
    )
    categorize_refresh_s: float = Field(60.0, gt=0)
    cluster_distance_threshold: float | None = Field(
        None, gt=0, lt=1, description="Cosine distance; unset: chosen by silhouette"
    )
    cluster_interval_s: float = Field(
        20.0, gt=0, description="How often users whose transactions changed are re-clustered"
    )

    health_port: int | None = Field(
        None, description="Port a container health check probes (set by docker-compose.yml)"
    )
    api_key: SecretStr | None = Field(None, description="The CLI's key for `spendstream import`")

    expose_docs: bool = Field(
        True, description="Serve /docs, /redoc and /openapi.json (and the consumers' AsyncAPI)"
    )
    expose_metrics: bool = Field(
        True,
        description="Serve /metrics; turn off where the port is public and scrape another way",
    )
    log_level: str = "INFO"
    log_tracebacks: bool = Field(
        False,
        description="Log exceptions with their stack traces (for debugging); by default a log "
        "line names the error's type and id only",
    )

    @cached_property
    def webhook_secrets(self) -> tuple[str, ...]:
        """The installation's webhook secrets: several while rotating, comma-separated."""
        if self.webhook_secret is None:
            return ()
        return tuple(
            s.strip() for s in self.webhook_secret.get_secret_value().split(",") if s.strip()
        )

    @property
    def timestamp_window(self) -> TimestampWindow:
        return TimestampWindow(
            earliest=self.timestamp_earliest,
            max_ahead=timedelta(hours=self.timestamp_max_ahead_hours),
        )

    @property
    def kafka_bootstrap_or_default(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.embedded_kafka_port}"

    def require_database_url(self) -> str:
        if not self.database_url:
            raise RuntimeError(
                "SPENDSTREAM_DATABASE_URL is not set. Run the stack with `spendstream up`, "
                "or point it at PostgreSQL: export SPENDSTREAM_DATABASE_URL=postgresql://..."
            )
        return self.database_url


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as the environment variables that reproduce them in a child process."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, bool):
            value = str(value).lower()
        env[f"SPENDSTREAM_{name.upper()}"] = str(value)
    return env


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
