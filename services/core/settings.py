"""The one settings module: every knob is an environment variable prefixed ``SPENDSTREAM_``.

Settings are grouped by concern into frozen models (``settings.kafka.bootstrap``,
``settings.scorer.batch_size``, ...). Each field's alias is its variable's name without the
prefix (``SPENDSTREAM_SCORER_BATCH_SIZE`` is ``scorer_batch_size``), so the variables stay flat,
as DESIGN.md names them, while code reads them by group. ``Settings(scorer_batch_size=100)`` and
``settings.replace(database_url=...)`` take the same flat names.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from schemas.transaction import MAX_BATCH_ITEMS, TimestampWindow

PREFIX = "SPENDSTREAM_"


class Group(BaseModel):
    """One concern's settings: frozen, and read or given by their flat names (aliases)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class KafkaSettings(Group):
    """The broker. Unset bootstrap: `spendstream up` starts an embedded one."""

    bootstrap: str | None = Field(
        None, alias="kafka_bootstrap", description="Kafka bootstrap servers, host:port[,...]"
    )
    idempotent_producer: bool = Field(
        False,
        alias="kafka_idempotent_producer",
        description="Enable the idempotent producer (the embedded tansu broker lacks it)",
    )
    request_timeout_ms: int = Field(5_000, ge=500, alias="kafka_request_timeout_ms")
    embedded_port: int = Field(9092, alias="embedded_kafka_port")

    @property
    def bootstrap_or_default(self) -> str:
        return self.bootstrap or f"127.0.0.1:{self.embedded_port}"


class TopicSettings(Group):
    transactions: str = Field("transactions.v1", alias="transactions_topic")
    partitions: int = Field(6, ge=1, alias="transactions_partitions")
    alerts: str = Field("alerts.anomalies.v1", alias="alerts_topic")
    drift: str = Field("drift.events.v1", alias="drift_topic")
    forecasts: str = Field("forecasts.updated.v1", alias="forecasts_topic")
    dlq: str = Field("transactions.dlq.v1", alias="dlq_topic")
    budget_alerts: str = Field("budgets.alerts.v1", alias="budget_alerts_topic")


class DatabaseSettings(Group):
    """PostgreSQL. Unset URL: `spendstream up` starts an embedded one."""

    url: str | None = Field(
        None, alias="database_url", description="PostgreSQL URL, postgresql://..."
    )
    pool_size: int = Field(8, ge=1, le=100, alias="database_pool_size")
    embedded_port: int = Field(5433, alias="embedded_postgres_port")

    def require_url(self) -> str:
        if not self.url:
            raise RuntimeError(
                "SPENDSTREAM_DATABASE_URL is not set. Run the stack with `spendstream up`, "
                "or point it at PostgreSQL: export SPENDSTREAM_DATABASE_URL=postgresql://..."
            )
        return self.url


class SecuritySettings(Group):
    webhook_secret: SecretStr | None = Field(
        None,
        alias="webhook_secret",
        description="Installation-wide webhook HMAC keys, comma-separated while rotating",
    )
    model_signing_key: SecretStr | None = Field(
        None,
        alias="model_signing_key",
        description="Key that signs anomaly models in the registry; a scorer loads no model it "
        "cannot verify. Unset: each scorer makes its own, and trusts only what it trained "
        "(`spendstream up` keeps one per data directory)",
    )
    api_key: SecretStr | None = Field(
        None, alias="api_key", description="The CLI's key for `spendstream import`"
    )
    api_key_cache_seconds: float = Field(
        30.0,
        ge=0,
        alias="api_key_cache_seconds",
        description="How long a verified key is trusted before the database is asked again",
    )

    @cached_property
    def webhook_secrets(self) -> tuple[str, ...]:
        """The installation's webhook secrets, parsed once: several while rotating."""
        if self.webhook_secret is None:
            return ()
        return tuple(
            s.strip() for s in self.webhook_secret.get_secret_value().split(",") if s.strip()
        )


class HttpSettings(Group):
    """Where each service listens, and what the HTTP services accept."""

    host: str = Field("127.0.0.1", alias="host")
    api_port: int = Field(8000, alias="api_port")
    ingest_port: int = Field(8001, alias="ingest_port")
    scorer_port: int = Field(8002, alias="scorer_port")
    forecaster_port: int = Field(8003, alias="forecaster_port")
    health_port: int | None = Field(
        None,
        alias="health_port",
        description="Port a container health check probes (set by docker-compose.yml)",
    )
    expose_docs: bool = Field(
        True,
        alias="expose_docs",
        description="Serve /docs, /redoc and /openapi.json (and the consumers' AsyncAPI)",
    )
    expose_metrics: bool = Field(
        True,
        alias="expose_metrics",
        description="Serve /metrics; turn off where the port is public and scrape another way",
    )

    def port_of(self, service: str) -> int:
        ports = {
            "api": self.api_port,
            "ingest": self.ingest_port,
            "scorer": self.scorer_port,
            "forecaster": self.forecaster_port,
        }
        return ports[service]


class IngestSettings(Group):
    max_body_bytes: int = Field(
        16 * 1024 * 1024,
        alias="max_body_bytes",
        description="Largest request body ingest reads, on any route",
    )
    max_batch_items: int = Field(
        MAX_BATCH_ITEMS,
        ge=1,
        le=MAX_BATCH_ITEMS,
        alias="max_batch_items",
        description="Most transactions in one request (at most the contract's limit)",
    )
    timestamp_earliest: AwareDatetime = Field(
        datetime(1970, 1, 1, tzinfo=UTC),
        alias="timestamp_earliest",
        description="Ingest rejects transactions dated before this (422 naming the field)",
    )
    timestamp_max_ahead_hours: float = Field(
        24.0,
        ge=0,
        alias="timestamp_max_ahead_hours",
        description="...and those dated more than this many hours ahead of its clock",
    )
    rate_limit: str = Field(
        "2000/second",
        alias="ingest_rate_limit",
        description="Requests per API key and ingest process (`limits` notation)",
    )

    @property
    def timestamp_window(self) -> TimestampWindow:
        return TimestampWindow(
            earliest=self.timestamp_earliest,
            max_ahead=timedelta(hours=self.timestamp_max_ahead_hours),
        )


class ApiSettings(Group):
    max_body_bytes: int = Field(
        64 * 1024,
        alias="api_max_body_bytes",
        description="Largest request body the query API reads, on any route",
    )
    rate_limit: str = Field(
        "100/second", alias="api_rate_limit", description="Requests per API key and process"
    )
    chart_render_concurrency: int = Field(
        2,
        ge=1,
        alias="chart_render_concurrency",
        description="PNG/SVG charts rendered at once per query API process",
    )


class ConsumerSettings(Group):
    """What the scorer and the forecaster share."""

    retry_max_seconds: float = Field(
        30.0,
        gt=0,
        alias="consumer_retry_max_seconds",
        description="Longest backoff between retries of a failed database write",
    )
    retry_give_up_seconds: float = Field(
        120.0,
        ge=0,
        alias="consumer_retry_give_up_seconds",
        description="How long a consumer retries a database write before it rewinds the batch "
        "and reads it again",
    )


class ScorerSettings(Group):
    batch_size: int = Field(500, ge=1, alias="scorer_batch_size")
    group_id: str = Field(
        "scorer",
        alias="scorer_group_id",
        description="Consumer group of the scorers; all scorers of a deployment share it",
    )
    anomaly_threshold: float = Field(
        0.97,
        ge=0,
        le=1,
        alias="anomaly_threshold",
        description="Ensemble score from which a transaction is an anomaly",
    )
    seed: int = Field(0, alias="scorer_seed")
    live_alert_within_hours: float = Field(
        72,
        gt=0,
        alias="live_alert_within_hours",
        description="A transaction ingested more than this long after it happened (an import, "
        "a backfill) is scored but raises no live alert",
    )
    history_per_account: int = Field(
        256,
        ge=16,
        alias="history_per_account",
        description="Window of past transactions the features of an account look at",
    )
    max_accounts_in_memory: int = Field(20_000, ge=100, alias="max_accounts_in_memory")
    retrain_interval_s: float = Field(
        3600, gt=0, alias="retrain_interval_s", description="Retrain at least this often"
    )
    retrain_after_transactions: int = Field(
        5_000, ge=1, alias="retrain_after_transactions", description="...or after this many new"
    )
    retrain_as_data_doubles: bool = Field(
        True,
        alias="retrain_as_data_doubles",
        description="...or as soon as the scored rows have doubled since the last model, so a "
        "fresh installation's first models are soon replaced; off, only the two above count",
    )
    min_training_rows: int = Field(1_000, ge=200, alias="min_training_rows")
    training_max_rows: int = Field(50_000, ge=200, alias="training_max_rows")
    legit_feedback_weight: int = Field(
        10, ge=1, alias="legit_feedback_weight", description="Weight of rows labelled legit"
    )
    model_check_interval_s: float = Field(
        5.0,
        gt=0,
        alias="model_check_interval_s",
        description="How often scorers look for a new model",
    )


class DriftSettings(Group):
    window_mode: Literal["time", "count"] = Field(
        "time", alias="drift_window_mode", description="time or count"
    )
    current_days: float = Field(7, gt=0, alias="drift_current_days")
    reference_days: float = Field(28, gt=0, alias="drift_reference_days")
    current_events: int = Field(
        200, ge=10, alias="drift_current_events", description="Current window, count mode"
    )
    reference_events: int = Field(
        800, ge=10, alias="drift_reference_events", description="Reference window, count mode"
    )
    interval_hours: float = Field(
        24,
        gt=0,
        alias="drift_interval_hours",
        description="At most one computation per scope per this much event time",
    )
    threshold: float = Field(
        0.1, gt=0, le=1, alias="drift_threshold", description="JSD at which drift is reported"
    )
    min_events: int = Field(
        30, ge=1, alias="drift_min_events", description="Smaller windows are insufficient"
    )
    check_interval_s: float = Field(
        10.0, gt=0, alias="drift_check_interval_s", description="How often to look for new data"
    )

    @property
    def span(self) -> timedelta:
        """How long after a transaction's time drift windows (current, reference and the step
        between comparisons) still hold it: a change to it makes those windows stale."""
        return timedelta(days=self.current_days + self.reference_days, hours=self.interval_hours)


class ForecastSettings(Group):
    batch_size: int = Field(1_000, ge=1, alias="forecaster_batch_size")
    group_id: str = Field(
        "forecaster", alias="forecaster_group_id", description="Consumer group of the forecasters"
    )
    horizon_days: int = Field(30, ge=1, le=366, alias="forecast_horizon_days")
    refresh_interval_s: float = Field(
        6 * 3600,
        gt=0,
        alias="forecast_refresh_interval_s",
        description="Refresh at least this often",
    )
    refresh_after_transactions: int = Field(
        2_000,
        ge=1,
        alias="forecast_refresh_after_transactions",
        description="...or after this many new",
    )
    check_interval_s: float = Field(
        10.0,
        gt=0,
        alias="forecast_check_interval_s",
        description="How often to look for users whose forecasts are out of date",
    )
    budget_check_interval_s: float = Field(
        10.0,
        gt=0,
        alias="budget_check_interval_s",
        description="How often the forecaster checks budgets for alerts to raise",
    )
    backtest_folds: int = Field(3, ge=1, le=10, alias="forecast_backtest_folds")
    min_days: int = Field(
        60, ge=35, alias="forecast_min_days", description="Days of history before the first run"
    )
    max_training_rows: int = Field(400_000, ge=1_000, alias="forecast_max_training_rows")


class CategorySettings(Group):
    """Auto-categorization and merchant clusters."""

    min_confidence: float = Field(
        0.45,
        ge=0,
        le=1,
        alias="categorize_min_confidence",
        description="Below this a predicted category is not applied",
    )
    index_size: int = Field(
        5_000,
        ge=10,
        alias="categorize_index_size",
        description="Labelled merchants in the kNN index",
    )
    refresh_s: float = Field(60.0, gt=0, alias="categorize_refresh_s")
    cluster_distance_threshold: float | None = Field(
        None,
        gt=0,
        lt=1,
        alias="cluster_distance_threshold",
        description="Cosine distance; unset: chosen by silhouette",
    )
    cluster_interval_s: float = Field(
        20.0,
        gt=0,
        alias="cluster_interval_s",
        description="How often users whose transactions changed are re-clustered",
    )


class LogSettings(Group):
    level: str = Field("INFO", alias="log_level")
    tracebacks: bool = Field(
        False,
        alias="log_tracebacks",
        description="Log exceptions with their stack traces (for debugging); by default a log "
        "line names the error's type and id only",
    )


class _FlatEnvironment(PydanticBaseSettingsSource):
    """``SPENDSTREAM_*`` variables from ``.env``, overridden by the environment, by their flat
    names (the groups' aliases)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # not used: __call__ reads every variable at once

    def __call__(self) -> dict[str, Any]:
        found = {**dotenv_values(".env"), **os.environ}
        return {
            key[len(PREFIX) :].lower(): value
            for key, value in found.items()
            if key.upper().startswith(PREFIX) and value is not None
        }


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", frozen=True)

    data_dir: Path = Field(
        Path(".spendstream"), description="Where embedded services keep their data"
    )
    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    database: DatabaseSettings = DatabaseSettings()
    security: SecuritySettings = SecuritySettings()
    http: HttpSettings = HttpSettings()
    ingest: IngestSettings = IngestSettings()
    api: ApiSettings = ApiSettings()
    consumers: ConsumerSettings = ConsumerSettings()
    scorer: ScorerSettings = ScorerSettings()
    drift: DriftSettings = DriftSettings()
    forecast: ForecastSettings = ForecastSettings()
    categories: CategorySettings = CategorySettings()
    logs: LogSettings = LogSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _FlatEnvironment(settings_cls)

    @model_validator(mode="before")
    @classmethod
    def _group_flat_names(cls, data: Any) -> Any:
        """Flat names (``scorer_batch_size``) go to their group; a group given whole stays."""
        if not isinstance(data, dict):
            return data
        grouped: dict[str, Any] = {}
        for key, value in data.items():
            group = GROUP_OF.get(key)
            if group is None:
                grouped[key] = value
            elif not isinstance(data.get(group), BaseModel):
                grouped.setdefault(group, {})
                if isinstance(grouped[group], dict):
                    grouped[group][key] = value
        return grouped

    def flat(self) -> dict[str, Any]:
        """Every setting by its flat name."""
        values: dict[str, Any] = {"data_dir": self.data_dir}
        for group in GROUPS:
            values.update(getattr(self, group).model_dump(by_alias=True))
        return values

    def replace(self, **flat: Any) -> Settings:
        """These settings with some changed, by flat name, validated."""
        return type(self).model_validate({**self.flat(), **flat})


GROUPS = tuple(
    name
    for name, field in Settings.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, Group)
)
GROUP_OF: dict[str, str] = {
    field.alias or name: group
    for group in GROUPS
    for name, field in Settings.model_fields[group].annotation.model_fields.items()  # type: ignore[union-attr]
}


def variable_names() -> set[str]:
    """Every ``SPENDSTREAM_*`` variable a setting reads."""
    return {f"{PREFIX}{name.upper()}" for name in [*GROUP_OF, "data_dir"]}


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as the environment variables that reproduce them in a child process."""
    env = {}
    for name, value in settings.flat().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, bool):
            value = str(value).lower()
        elif isinstance(value, datetime):
            value = value.isoformat()
        env[f"{PREFIX}{name.upper()}"] = str(value)
    return env


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
