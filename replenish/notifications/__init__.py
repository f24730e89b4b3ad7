"""Notifications: devices told of their orders over MQTT."""

from .devices import DeviceNotices

__all__ = ["DeviceNotices"]
