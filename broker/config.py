"""Settings, built once from command-line flags and `BROKER_*` environment variables.

This is the only module that reads the environment. A flag beats its variable; the variable
beats the default.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 9876
    data_dir: str | None = None
    config: str | None = None  # provisioning file (TOML): queues, topics, subscriptions, compute envs
    secret_id: str | None = None
    secret_key: str | None = None
    region: str = "ap-guangzhou"
    log_level: str = "info"
    log_format: str = "text"
    access_log: bool = False
    max_request_bytes: int = 4 * 1024 * 1024  # 16 URL-encoded 64 KiB bodies fit
    max_queues: int = 1000
    max_topics: int = 1000
    max_connections: int = 10000
    request_timeout: float = 60.0  # seconds a request may take to arrive, headers and body
    max_long_polls: int = 10000
    signature_max_skew: int = 300  # seconds a signed request's Timestamp may differ from our clock
    strict: bool = False
    app_id: int = 1250000000
    push_retry_scale: float = 1.0
    push_timeout: float = 15.0
    batch_time_scale: float = 1.0
    batch_delays: str = ""  # e.g. "node_boot=2,run=0.5": single simulated delays, in seconds
    no_console: bool = False  # True: no web console at /console (404)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.secret_id and self.secret_key)


# flag name → (env var, type, help)
_OPTIONS = {
    "host": (str, "address to listen on"),
    "port": (int, "port to listen on; 0 picks a free one and prints it"),
    "data_dir": (str, "directory for durable state (write-ahead log + snapshots); unset = in memory"),
    "config": (str, "TOML file declaring queues, topics, subscriptions and Batch compute environments to create "
                    "at start (see README, Provisioning)"),
    "secret_id": (str, "SecretId clients must sign with (with --secret-key); unset = no auth"),
    "secret_key": (str, "SecretKey for signature checks"),
    "region": (str, "region of Batch calls that send no X-TC-Region (and of their events)"),
    "log_level": (str, "one of " + ", ".join(LOG_LEVELS)),
    "log_format": (str, "text, or json for one JSON object per log line"),
    "access_log": (bool, "log one line per HTTP request (method, path, action, status and code, duration)"),
    "max_request_bytes": (int, "largest request body accepted"),
    "max_queues": (int, "most queues the broker holds"),
    "max_topics": (int, "most topics the broker holds"),
    "max_connections": (int, "most client connections open at once; more are answered 503 and closed"),
    "request_timeout": (float, "seconds a request may take to arrive (headers and body) before its connection "
                               "is closed: slow clients cannot hold connections"),
    "max_long_polls": (int, "most receivers parked in long polls at once, over all queues"),
    "signature_max_skew": (int, "with secrets: seconds a CMQ Timestamp or X-TC-Timestamp may differ from the "
                                "broker's clock (older requests are refused as replays)"),
    "strict": (bool, "also refuse what the cloud is documented to refuse but unconfirmed: publish that reaches "
                     "no subscription (6030), DeleteTopic with subscriptions, routing subscription without bindingKey"),
    "app_id": (int, "account APPID shown as the topic owner"),
    "push_retry_scale": (float, "multiplies every push retry gap (0.01 makes the day-long schedule ~14 min)"),
    "push_timeout": (float, "seconds one HTTP push may take before it counts as failed"),
    "batch_time_scale": (float, "multiplies every simulated Batch delay (node boot, default run time, ...)"),
    "batch_delays": (str, "set single simulated Batch delays in seconds, e.g. node_boot=2,run=0.5 (names: "
                          "node_create, node_boot, node_delete, node_abnormal_after, node_recreate, "
                          "instance_start, run, terminate)"),
    "no_console": (bool, "serve no web console at /console"),
}

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def env_name(field: str) -> str:
    return "BROKER_" + field.upper()


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Config()
    for name, (kind, help_text) in _OPTIONS.items():
        default = getattr(defaults, name)
        if kind is bool:
            parser.add_argument(
                "--" + name.replace("_", "-"),
                dest=name,
                action="store_const",
                const="true",
                default=None,
                help=f"{help_text} (env {env_name(name)}=1)",
            )
            continue
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            default=None,
            help=f"{help_text} (env {env_name(name)}; default {default})",
        )


def build_config(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Config:
    """Merge flags, environment and defaults; raise ValueError naming the bad setting."""
    environ = os.environ if environ is None else environ
    values = {}
    for f in fields(Config):
        kind = _OPTIONS[f.name][0]
        raw = getattr(args, f.name, None)
        source = "--" + f.name.replace("_", "-")
        if raw is None:
            raw = environ.get(env_name(f.name))
            source = env_name(f.name)
        if raw is None or raw == "":
            continue
        if kind is int or kind is float:
            try:
                raw = kind(raw)
            except ValueError:
                raise ValueError(f"{source} must be a number, got {raw!r}") from None
        elif kind is bool:
            if raw.lower() not in _TRUE + _FALSE:
                raise ValueError(f"{source} must be one of {', '.join(_TRUE + _FALSE)}, got {raw!r}")
            raw = raw.lower() in _TRUE
        values[f.name] = raw
    config = Config(**values)
    if not 0 <= config.port <= 65535:
        raise ValueError(f"port must be from 0 to 65535, got {config.port}")
    if config.log_level.lower() not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, got {config.log_level!r}")
    if config.log_format.lower() not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {config.log_format!r}")
    if bool(config.secret_id) != bool(config.secret_key):
        raise ValueError("--secret-id and --secret-key go together: give both or neither")
    if config.max_request_bytes < 1024 or config.max_queues < 1 or config.max_topics < 1:
        raise ValueError("max-request-bytes must be at least 1024, max-queues and max-topics at least 1")
    if config.max_connections < 1 or config.max_long_polls < 0 or config.signature_max_skew < 1 \
            or not config.request_timeout > 0:
        raise ValueError("max-connections and signature-max-skew must be at least 1, max-long-polls at least 0, "
                         "request-timeout greater than 0")
    if not config.push_retry_scale > 0 or not config.push_timeout > 0 or not config.batch_time_scale >= 0:
        raise ValueError("push-retry-scale and push-timeout must be greater than 0, batch-time-scale at least 0")
    batch_delays(config)  # checked here, so a typo fails the start with a clear message
    return config


def batch_delays(config: Config) -> dict[str, float]:
    """--batch-delays as {name: seconds}; raises ValueError naming a bad entry."""
    from .batchsim import SimSettings

    known = {f.name for f in fields(SimSettings)} - {"time_scale"}
    out = {}
    for item in filter(None, (part.strip() for part in config.batch_delays.split(","))):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in known:
            raise ValueError(f"--batch-delays: {item!r} is not NAME=SECONDS with NAME one of {', '.join(sorted(known))}")
        try:
            seconds = float(value)
        except ValueError:
            raise ValueError(f"--batch-delays: {name} must be a number of seconds, got {value!r}") from None
        if not seconds >= 0:
            raise ValueError(f"--batch-delays: {name} must be at least 0, got {value!r}")
        out[name] = seconds
    return out


@dataclass(frozen=True)
class ClientConfig:
    """Where the client commands (`queue`, `topic`, `events`) find the broker, and how they sign.
    The secrets are the server's own variables, so one environment drives both."""

    url: str = "http://127.0.0.1:9876"
    secret_id: str = ""
    secret_key: str = ""


def build_client_config(args: argparse.Namespace, environ: dict[str, str] | None = None) -> ClientConfig:
    """--url/--secret-id/--secret-key, else BROKER_URL/BROKER_SECRET_ID/BROKER_SECRET_KEY."""
    environ = os.environ if environ is None else environ
    values = {}
    for f in fields(ClientConfig):
        raw = getattr(args, f.name, None)
        if raw is None:
            raw = environ.get(env_name(f.name))
        if raw:
            values[f.name] = raw
    config = ClientConfig(**values)
    if bool(config.secret_id) != bool(config.secret_key):
        raise ValueError("--secret-id and --secret-key go together: give both or neither")
    return config
