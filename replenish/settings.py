"""Typed settings from REPLENISH_* environment variables; they fail fast on unsafe values."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway import Topics

__all__ = ["DEV_SECRET", "Settings"]

DEV_SECRET = "dev-only-change-me"  # refused outside development


class Settings(BaseSettings):
    """Every knob of the service; see the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="REPLENISH_", extra="ignore")

    env: Literal["development", "production", "test"] = "development"
    database_url: str = "sqlite:///./replenish.db"
    mqtt_url: str = Field("", description="empty: start the embedded broker")
    mqtt_admin_url: str = Field("", description="Mosquitto dynamic-security admin, for provisioning devices")
    admin_token: str = Field("", description="bearer token of the operator API (device provisioning); empty: API off")
    mqtt_namespace: str = Field("", description="topics under {namespace}/replenish/v1/devices/ (a broker shared with others); empty: none")
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    web_host: str = "127.0.0.1"
    web_port: int = 8000
    secret_key: str = DEV_SECRET
    clock_speed: float = Field(1.0, gt=0)
    clock_start: datetime | None = None
    tick_seconds: float = Field(1.0, gt=0)
    cancel_window_hours: float = Field(24.0, ge=0)
    lead_time_days: float = Field(4.0, ge=0, description="lead time of a fulfilment system registered without its own")
    retention_days: int = Field(400, ge=1, description="raw readings older than this become daily aggregates (SPEC 4)")
    calendar_refresh_minutes: float = Field(60.0, gt=0, description="how often each household's .ics feed is fetched (service clock)")
    calendar_timeout_seconds: float = Field(10.0, gt=0, le=120, description="a feed's whole fetch, connect to last byte")
    calendar_allow_private: bool = Field(False, description="let feeds on loopback and private networks be fetched (tests, a LAN calendar server); off: public addresses only")
    gateway_client_id: str = "replenish-gateway"
    gateway_share_group: str = Field("", description="MQTT 5 shared-subscription group for telemetry; empty: a plain subscription")
    log_format: Literal["json", "console"] = "console"
    log_level: str = "INFO"

    @field_validator("mqtt_namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        Topics(value)  # raises ValueError naming what is wrong
        return value

    @property
    def topics(self) -> Topics:
        """The device topics of this deployment."""
        return Topics(self.mqtt_namespace)

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Settings:
        if self.env == "production" and self.secret_key == DEV_SECRET:
            raise ValueError("REPLENISH_SECRET_KEY must be set to a real secret in production")
        if self.clock_start is not None and self.clock_start.tzinfo is None:
            raise ValueError("REPLENISH_CLOCK_START must carry a UTC offset")
        return self
