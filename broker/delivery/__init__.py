"""Deferred delivery to topic subscribers (HTTP push, and queue copies retried later)."""

from .push import Pusher, PushSettings, retry_gaps

__all__ = ["Pusher", "PushSettings", "retry_gaps"]
