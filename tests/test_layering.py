"""The layers of broker/ (docs/architecture.md), checked on every import, relative ones included.

Each module's imports are read from its source with `ast` and resolved to absolute module names
(`from ..protocol import x` in broker/engine/queue.py is `broker.protocol`), including imports
under `if TYPE_CHECKING:` and inside functions: a layer rule holds for the whole file.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "broker"


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: pathlib.Path) -> set[str]:
    """Every module `path` imports, as absolute dotted names (`from a import b` gives a and a.b)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                if node.level - 1 > len(package.split(".")) - 1:
                    raise AssertionError(f"{path}: relative import beyond the package")
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def modules_under(sub: str) -> list[pathlib.Path]:
    target = PACKAGE / sub
    return sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]


def under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


# layer → what it must not import (broker.* prefixes and third-party top-level names)
RULES: dict[str, tuple[str, ...]] = {
    # The engine knows nothing of HTTP, files, wire formats, or who uses it.
    "engine": ("broker.protocol", "broker.storage", "broker.store", "broker.console", "broker.batchsim",
               "broker.delivery", "broker.pipeline", "broker.server", "broker.metrics", "broker.provision",
               "aiohttp", "msgpack", "json", "urllib", "http"),
    # The store seam sits on the engine; protocols sit on it, never the other way round.
    "store": ("broker.protocol", "broker.storage", "broker.console", "broker.pipeline", "broker.server",
              "aiohttp", "msgpack"),
    # Protocols decode and render; they never touch the log, the console or the push worker.
    "protocol": ("broker.storage", "broker.console", "broker.delivery", "broker.server", "broker.provision",
                 "msgpack"),
    # The console is a client of the store, the simulator and the pipeline, not of any protocol.
    "console": ("broker.protocol", "broker.storage", "broker.server", "broker.delivery", "msgpack"),
    # Storage frames and replays what the parts give it; it knows no protocol, console or simulator.
    "storage": ("broker.protocol", "broker.console", "broker.batchsim", "broker.delivery", "broker.pipeline",
                "broker.server", "aiohttp"),
    # The simulator owns its records, and publishes through the engine like any client.
    "batchsim": ("broker.protocol", "broker.console", "broker.storage", "broker.delivery", "broker.server",
                 "broker.pipeline", "aiohttp", "msgpack"),
    "delivery": ("broker.protocol", "broker.console", "broker.storage", "broker.server", "broker.batchsim"),
    "pipeline": ("broker.protocol", "broker.console", "broker.storage", "broker.store", "broker.engine", "broker.metrics",
                 "broker.server", "broker.batchsim"),
    # The people's command line talks to a running broker over HTTP only.
    "commands": ("broker.engine", "broker.store", "broker.storage", "broker.server", "broker.batchsim",
                 "broker.console", "aiohttp"),
    "client": ("broker.engine", "broker.store", "broker.storage", "broker.server", "broker.batchsim", "aiohttp"),
}


@pytest.mark.parametrize("layer", sorted(RULES))
def test_layer_imports(layer):
    files = modules_under(layer)
    assert files and all(f.exists() for f in files), f"no modules for layer {layer}"
    bad = []
    for path in files:
        for module in sorted(imports_of(path)):
            for banned in RULES[layer]:
                if under(module, banned) or (not banned.startswith("broker") and module.split(".")[0] == banned):
                    bad.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not bad, "\n".join(bad)


def test_the_resolver_sees_relative_imports(tmp_path):
    """The check itself: a relative import into a forbidden layer is caught."""
    fake = PACKAGE / "engine" / "queue.py"
    found = imports_of(fake)
    assert "broker.clock" in found and "broker.errors" in found  # written `from ..clock import ...`
    probe = PACKAGE / "engine" / "_probe_layering.py"
    probe.write_text("from ..protocol import cmq\nfrom . import queue\n")
    try:
        assert {"broker.protocol", "broker.protocol.cmq", "broker.engine.queue"} <= imports_of(probe)
    finally:
        probe.unlink()


def test_no_import_side_effect_registries():
    """Actions are declared in tables, not registered by decorators into module globals."""
    offenders = [str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py") if "@register(" in p.read_text()]
    assert not offenders, offenders
