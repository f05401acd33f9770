"""pytest plugin (entry point `cmq_broker`): an isolated in-process broker per test.

Fixtures:
    cmq_broker           a `broker.testing.ThreadedBroker` (url, config, engine, account(), ...)
    cmq_account          `cmq_broker.account()`: a ready `cmq.account.Account`
    cmq_batch_client     `cmq_broker.batch_client()`: a ready Batch `BatchClient`
    cmq_broker_settings  the `Config` settings the broker starts with ({}); override it

The broker runs in a thread on its own event loop (`broker_thread`), so tests call the blocking
SDKs directly. It lives for one test by default; `cmq_broker_scope = session` in the ini file,
or `--cmq-broker-scope session`, shares one across the run (any pytest scope is accepted), and
pytest's dynamic scope applies it. Per test, `@pytest.mark.cmq_broker(secret_id=..., ...)` adds
settings; it needs the function scope, since a shared broker cannot follow one test's wishes.

This module imports only pytest: runs that never ask for the fixtures pay nothing for it.
"""

from __future__ import annotations

import pytest

SCOPES = ("function", "class", "module", "package", "session")
_MARKER = "cmq_broker"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cmq-broker", "in-process CMQ broker fixtures")
    group.addoption("--cmq-broker-scope", dest="cmq_broker_scope", default=None, choices=SCOPES,
                    help="how long one cmq_broker lives (default: the cmq_broker_scope ini value, else function)")
    parser.addini("cmq_broker_scope", default="function",
                  help=f"how long one cmq_broker lives: one of {', '.join(SCOPES)} (default function)")


def broker_scope(config: pytest.Config) -> str:
    scope = config.getoption("cmq_broker_scope") or config.getini("cmq_broker_scope").strip() or "function"
    if scope not in SCOPES:
        raise pytest.UsageError(f"cmq_broker_scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    return scope


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{_MARKER}(**settings): start this test's cmq_broker with these broker.config.Config "
                   "settings (function scope only)")
    broker_scope(config)  # a bad scope is a usage error at once, not a failure in every test


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    scope = broker_scope(config)
    if scope == "function":
        return
    for item in items:
        if item.get_closest_marker(_MARKER) and "cmq_broker" in getattr(item, "fixturenames", ()):
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.{_MARKER} needs a cmq_broker per test, but the scope is "
                f"{scope!r}; use the cmq_broker_settings fixture for a shared broker's settings")


def _dynamic_scope(fixture_name: str, config: pytest.Config) -> str:
    return broker_scope(config)


@pytest.fixture(scope="session")
def cmq_broker_settings() -> dict:
    """Settings every cmq_broker starts with. Override it in a conftest.py; for a shared broker
    the override needs a scope at least as wide as the broker's (e.g. scope="session")."""
    return {}


@pytest.fixture(scope=_dynamic_scope)
def cmq_broker(request: pytest.FixtureRequest, cmq_broker_settings: dict):
    """An isolated broker on a free port of 127.0.0.1 (see broker.testing.broker_thread)."""
    from broker.testing import broker_thread, make_config

    settings = dict(cmq_broker_settings)
    marker = request.node.get_closest_marker(_MARKER) if request.scope == "function" else None
    if marker is not None:
        if marker.args:
            pytest.fail(f"@pytest.mark.{_MARKER} takes keyword settings only, got {marker.args!r}", pytrace=False)
        settings.update(marker.kwargs)
    try:
        make_config(settings)  # a bad setting deserves one clear line, not a traceback through the plugin
    except (TypeError, ValueError) as exc:
        pytest.fail(f"cmq_broker: {exc}", pytrace=False)
    with broker_thread(**settings) as handle:
        yield handle


@pytest.fixture
def cmq_account(cmq_broker):
    """A `cmq.account.Account` signed with the broker's credentials."""
    return cmq_broker.account()


@pytest.fixture
def cmq_batch_client(cmq_broker):
    """A Tencent Cloud `BatchClient` pointed at the broker, in its region."""
    return cmq_broker.batch_client()
