"""CMQ API 2.0: form-encoded actions at /v2/index.php."""

from .app import ACTIONS, CmqEndpoint

__all__ = ["ACTIONS", "CmqEndpoint"]
