"""Tencent Cloud API 3.0, shared by its services: JSON actions at `POST /`, TC3-signed.

`app.Api3Protocol` decodes a request (TC3 signature, X-TC-* headers, JSON parameters), chooses
the `Service` it is for (credential scope, host, or the action's owner), checks the version,
and renders the `{"Response": ...}` envelope through the one error table (`errors.py`). Each
service is a package here (`batch/`) whose `*_service(target)` returns its `Service`; server.py
builds the list. Importing this package registers nothing.
"""

from .app import Api3Protocol
from .service import Service

__all__ = ["Api3Protocol", "Service"]
