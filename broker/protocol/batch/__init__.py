"""Tencent Cloud API 3.0 for Batch (2017-03-12): JSON actions at `POST /`, TC3-signed.

Handler modules register themselves in `ACTIONS` when imported; import each one here.
"""

from .app import ACTIONS, UNSUPPORTED, BatchEndpoint, Context, register

# Handler modules, imported for their @register side effect (after app, which they import).
from . import cvm, envs, jobs, templates  # noqa: E402,F401  isort: skip

__all__ = ["ACTIONS", "UNSUPPORTED", "BatchEndpoint", "Context", "register"]
