"""CMQ API 2.0: form-encoded actions at /v2/index.php.

The endpoint is `app.CmqEndpoint` (with the `ACTIONS` table). This package imports nothing on
its own, so `signature.py` (the one place that knows how CMQ signs) is usable without aiohttp:
the command-line client signs with it.
"""
