"""Events the pipeline publishes, besides transactions themselves."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class DeadLetter(BaseModel):
    """A message that could not be processed, kept with its original bytes for replay."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = Field(1, description="Version of this event schema.")
    topic: str = Field(description="Topic the message was read from.")
    partition: int = Field(description="Partition it was read from.")
    offset: int = Field(description="Its offset there.")
    key: str | None = Field(None, description="Message key, decoded as UTF-8 with replacement.")
    value_b64: str = Field(description="The original message bytes, base64.")
    error: str = Field(description="Why it was rejected, naming the field where one is at fault.")
    consumer_group: str = Field(description="The consumer that rejected it.")
    failed_at: datetime = Field(description="When it was rejected (UTC).")
