"""The body Alertmanager's webhook receiver posts (version 4 of its notification format)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Wire(BaseModel):
    """Alertmanager's JSON uses camelCase; unknown fields from newer versions are ignored."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class Alert(_Wire):
    """One alert of the notification, firing or resolved."""

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = Field(default="", max_length=64)


class Notification(_Wire):
    """A group of alerts Alertmanager sends together."""

    version: str = "4"
    group_key: str = Field(default="", alias="groupKey")
    status: Literal["firing", "resolved"]
    receiver: str = ""
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    external_url: str = Field(default="", alias="externalURL")
    alerts: list[Alert] = Field(max_length=10000)
