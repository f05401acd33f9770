"""The container image, tested without building it and, where a Docker daemon runs, by building it.

Most machines that run this suite (CI included) have no Docker daemon. So the Dockerfile's final
stage is parsed, and its CMD is run with exactly its ENV over an otherwise empty environment, as
the container would run it: from `/`, with a HOME that does not exist, the port moved to a free
one and the data directory (the image's volume) to a temporary directory. Its HEALTHCHECK command
is run the same way. Only `/opt/venv/bin` on PATH is mapped to this venv's bin directory, where the
same package is installed.

Where `docker info` works and the base image is present or can be pulled, the last test builds
the image and checks the same things on a real container.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlencode

import pytest
from cmq.account import Account
from cmq.queue import Message

from helpers import ANY_ID, ANY_KEY, REPO_ROOT, Background, account_for, drain, queue_meta, server_error, stop_process

DOCKERFILE = REPO_ROOT / "Dockerfile"
COMPOSE = REPO_ROOT / "docker-compose.yml"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
VENV_BIN = "/opt/venv/bin"  # where the image's venv lives; mapped to this interpreter's bin directory
STOP_GRACE = 10.0  # Docker's default wait between SIGTERM and SIGKILL
LISTENING = re.compile(r"cmq-broker listening on http://(\S+):(\d+)")
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --- the Dockerfile, as Docker reads it -------------------------------------------------------

def _instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction: continuations joined, comments dropped."""
    out, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue  # Docker drops comment lines, even inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def _stages(text: str) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, args in _instructions(text):
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, args))
    return stages


class FinalStage:
    """What the image is made of: the last stage's settings."""

    def __init__(self, text: str):
        self.stages = _stages(text)
        stage = self.stages[-1]
        self.base = stage[0][1]
        self.env_pairs: list[tuple[str, str]] = []
        self.volumes: list[str] = []
        self.expose: list[str] = []
        self.runs: list[str] = []
        self.copies: list[str] = []
        self.user = self.cmd = self.stopsignal = self.healthcheck = None
        for keyword, args in stage[1:]:
            if keyword == "ENV":
                for token in shlex.split(args):
                    name, eq, value = token.partition("=")
                    assert eq, f"ENV {token!r}: use the KEY=VALUE form"
                    self.env_pairs.append((name, value))
            elif keyword == "VOLUME":
                self.volumes += json.loads(args) if args.startswith("[") else args.split()
            elif keyword == "EXPOSE":
                self.expose += args.split()
            elif keyword == "RUN":
                self.runs.append(args)
            elif keyword == "COPY":
                self.copies.append(args)
            elif keyword == "USER":
                self.user = args
            elif keyword == "CMD":
                self.cmd = args
            elif keyword == "STOPSIGNAL":
                self.stopsignal = args
            elif keyword == "HEALTHCHECK":
                self.healthcheck = args

    @property
    def env(self) -> dict[str, str]:
        return dict(self.env_pairs)

    def cmd_argv(self) -> list[str]:
        assert self.cmd and self.cmd.startswith("["), f"CMD must be in exec form (JSON array), got {self.cmd!r}"
        return json.loads(self.cmd)

    def health(self) -> tuple[dict[str, str], str]:
        """The HEALTHCHECK options and its shell-form command."""
        m = re.fullmatch(r"((?:--[\w-]+=\S+\s+)*)CMD\s+(.+)", self.healthcheck or "")
        assert m, f"HEALTHCHECK must be `[--opt=value ...] CMD command`, got {self.healthcheck!r}"
        options = dict(opt[2:].split("=", 1) for opt in m.group(1).split())
        return options, m.group(2)


@pytest.fixture(scope="module")
def image() -> FinalStage:
    return FinalStage(DOCKERFILE.read_text())


def _duration(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", text)
    assert m, f"unreadable duration {text!r}"
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[m.group(2)]


def test_final_stage_is_small_unprivileged_and_configured(image: FinalStage):
    assert len(image.stages) >= 2, "build in one stage, run from another"
    assert re.search(r"slim|alpine|distroless", DOCKERFILE.read_text()), "use a slim base image"
    assert image.copies and all(c.startswith("--from=") for c in image.copies), \
        "the final stage takes only what the build stage made"
    for run in image.runs:  # no package installs, hence no compilers, in the final layer
        assert not re.search(r"\b(apt-get|apt|apk|pip)\b\s+(install|add)", run), run
    uid = image.user.split(":")[0]
    assert image.user and uid not in ("0", "root"), f"USER must not be root, got {image.user!r}"
    env = image.env
    assert env["BROKER_HOST"] == "0.0.0.0"
    assert image.expose == [env["BROKER_PORT"]]
    assert image.volumes == [env["BROKER_DATA_DIR"]], "the data directory is the declared volume"
    assert any(f"chown {image.user}" in run or f"chown {uid}" in run for run in image.runs), \
        "the volume's directory must belong to the broker's user"
    assert env["PATH"].startswith(VENV_BIN + ":")
    assert image.cmd_argv()[:4] == ["python", "-m", "broker", "serve"]
    assert image.stopsignal == "SIGTERM"
    options, command = image.health()
    assert "/healthz" in command
    assert _duration(options["timeout"]) < _duration(options["interval"])
    assert all(name.startswith("BROKER_") or name in ("PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")
               for name in env), "settings are BROKER_* variables"


def test_dockerignore_sends_only_what_the_build_copies():
    patterns = [ln.strip() for ln in DOCKERIGNORE.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert patterns[0] == "*", ".dockerignore is an allow-list: everything else stays out of the context"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    build = _stages(DOCKERFILE.read_text())[0]
    copied = {src.rstrip("/") for kw, args in build if kw == "COPY" for src in args.split()[:-1]}
    assert copied == allowed, "every COPY source, and only those, is let into the context"
    for heavy in (".venv", "bench", ".git", "tests", ".pytest_cache"):
        assert heavy not in allowed


# --- the image's command, run as the image runs it ---------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def image_environment(image: FinalStage, data_dir: Path, **overrides: str) -> dict[str, str]:
    """The image's ENV applied in order over an empty environment, as Docker does."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/nonexistent"}
    for name, value in image.env_pairs:
        value = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), value)
        env[name] = value.replace(VENV_BIN, str(Path(sys.executable).parent))
    env.update(BROKER_PORT=str(_free_port()), BROKER_DATA_DIR=str(data_dir))
    env.update(overrides)
    return env


def _pid1_works() -> bool:
    try:
        return subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class ImageCommand:
    """The image's CMD running with the image's environment; as PID 1 of a new PID namespace when
    `pid1` (the kernel gives PID 1 no default signal actions, so only handlers the broker
    installs itself make SIGTERM work there, as in a container)."""

    def __init__(self, image: FinalStage, env: dict[str, str], pid1: bool = False):
        argv = image.cmd_argv()
        assert shutil.which(argv[0], path=env["PATH"]) == str(Path(sys.executable).parent / argv[0])
        if pid1:
            argv = ["unshare", "--pid", "--fork", "--kill-child", *argv]
        self.env = env
        self.stderr_path = Path(env["BROKER_DATA_DIR"]).parent / f"stderr-{uuid.uuid4().hex[:8]}"
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(argv, env=env, cwd="/", stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=err, text=True)
        self.announced = threading.Event()
        self.address: tuple[str, int] | None = None
        threading.Thread(target=self._read, daemon=True).start()
        if not self.announced.wait(15):
            stop_process(self.proc, timeout=2)
            pytest.fail(f"the image's command never said it was listening:\n{self.stderr()}", pytrace=False)
        self.broker_pid = self._child_of(self.proc.pid) if pid1 else self.proc.pid

    def _read(self) -> None:
        for line in self.proc.stdout:
            m = LISTENING.search(line)
            if m and not self.announced.is_set():
                self.address = (m.group(1), int(m.group(2)))
                self.announced.set()

    @staticmethod
    def _child_of(pid: int) -> int:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert len(children) == 1, children
        child = int(children[0])
        nspid = re.search(r"^NSpid:\s+(.*)$", Path(f"/proc/{child}/status").read_text(), re.M).group(1).split()
        assert nspid[-1] == "1", f"the broker is not PID 1 in its namespace: NSpid {nspid}"
        return child

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.address[1]}"

    def account(self, secret_id: str = ANY_ID, secret_key: str = ANY_KEY) -> Account:
        return account_for(self.url, secret_id, secret_key)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def terminate(self) -> tuple[int | None, float]:
        """SIGTERM the broker as `docker stop` does; its exit status and how long it took."""
        started = time.monotonic()
        os.kill(self.broker_pid, signal.SIGTERM)
        try:
            status = self.proc.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            status = None
        return status, time.monotonic() - started

    def close(self) -> None:
        if self.proc.poll() is None:
            self.terminate()  # the broker itself: `unshare` would not pass the signal on
        stop_process(self.proc, timeout=1)


@pytest.fixture
def run_image(image: FinalStage, tmp_path: Path):
    started: list[ImageCommand] = []

    def start(pid1: bool = False, data_dir: Path | None = None, **overrides: str) -> ImageCommand:
        env = image_environment(image, data_dir or tmp_path / "data", **overrides)
        cmd = ImageCommand(image, env, pid1)
        started.append(cmd)
        return cmd

    yield start
    for cmd in started:
        cmd.close()


def healthcheck(image: FinalStage, env: dict[str, str]) -> subprocess.CompletedProcess:
    _, command = image.health()
    return subprocess.run(["/bin/sh", "-c", command], env=env, cwd="/", capture_output=True, text=True, timeout=30)


def test_serves_on_all_interfaces_and_passes_its_healthcheck(image: FinalStage, run_image):
    broker = run_image()
    host, port = broker.address
    assert (host, str(port)) == ("0.0.0.0", broker.env["BROKER_PORT"])
    if sys.platform == "linux":  # 127.0.0.2 reaches only a socket bound to it or to every address
        with NO_PROXY.open(f"http://127.0.0.2:{port}/healthz", timeout=5) as reply:
            assert reply.status == 200
    done = healthcheck(image, broker.env)
    assert done.returncode == 0, done.stderr
    # The same check against a port where nothing listens must report unhealthy (1; 2 is reserved).
    failed = healthcheck(image, {**broker.env, "BROKER_PORT": str(_free_port())})
    assert failed.returncode == 1, failed


def test_every_setting_comes_from_the_environment(run_image):
    broker = run_image(BROKER_SECRET_ID="AKIDcontainer", BROKER_SECRET_KEY="container-key",
                       BROKER_MAX_QUEUES="1", BROKER_LOG_LEVEL="warning")
    wrong = broker.account("AKIDcontainer", "not-the-key").get_queue("q1")
    assert server_error(wrong.create, queue_meta()).code == 4100
    right = broker.account("AKIDcontainer", "container-key")
    right.get_queue("q1").create(queue_meta())
    assert server_error(right.get_queue("q2").create, queue_meta()).code == 4450  # BROKER_MAX_QUEUES=1
    assert any(Path(broker.env["BROKER_DATA_DIR"]).glob("wal-*.log")), "BROKER_DATA_DIR holds the log"
    assert " INFO " not in broker.stderr(), "BROKER_LOG_LEVEL=warning keeps the start-up INFO lines out"


class Senders:
    """Threads sending messages as fast as the broker answers, each over its own connections,
    keeping the bodies the broker acknowledged. A refused or dropped connection is what a stopping
    broker may do; an HTTP error status or a non-zero code is not."""

    def __init__(self, url: str, queue: str, threads: int = 3):
        self.url, self.queue = url + "/v2/index.php", queue
        self.stop = threading.Event()
        self.acked: list[str] = []
        self.wrong: list[object] = []
        self.threads = [threading.Thread(target=self._send, args=(n,), daemon=True) for n in range(threads)]
        for t in self.threads:
            t.start()

    def _send(self, n: int) -> None:
        count = 0
        while not self.stop.is_set():
            body = f"{n}-{count}"
            count += 1
            form = urlencode({"Action": "SendMessage", "queueName": self.queue, "msgBody": body}).encode()
            try:
                with NO_PROXY.open(self.url, form, timeout=STOP_GRACE) as reply:
                    answer = json.load(reply)
            except urllib.error.HTTPError as exc:
                self.wrong.append(f"HTTP {exc.code}: {exc.read()[:200]!r}")
                continue
            except (OSError, http.client.HTTPException):  # refused or cut off: not acknowledged
                time.sleep(0.01)
                continue
            (self.acked if answer.get("code") == 0 else self.wrong).append(body if answer.get("code") == 0 else answer)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(STOP_GRACE)


def _drain(queue) -> set[str]:
    """The bodies now visible in `queue`, received and left in place (in flight)."""
    return {m.msgBody for m in drain(queue, delete=False)}


@pytest.mark.parametrize("pid1", [False, True], ids=["process", "pid1"])
def test_sigterm_under_load_exits_0_and_keeps_every_acknowledged_message(run_image, tmp_path: Path, pid1: bool):
    if pid1 and not _pid1_works():
        pytest.skip("`unshare --pid` is not permitted here (needs root or user namespaces)")
    data_dir = tmp_path / "volume"
    broker = run_image(pid1=pid1, data_dir=data_dir)
    account = broker.account()
    account.get_queue("kept").create(queue_meta(visibilityTimeout=45))
    account.get_queue("empty").create(queue_meta())

    parked = Background(account.get_queue("empty").receive_message, polling_wait_seconds=30)
    senders = Senders(broker.url, "kept")
    time.sleep(0.5)  # requests in flight on every thread, the long poll parked
    status, took = broker.terminate()
    senders.finish()
    assert status == 0, broker.stderr()
    assert took < STOP_GRACE / 2, f"SIGTERM took {took:.1f}s to stop the broker"
    assert parked.wait(5) and getattr(parked.error, "code", None) == 7000, "the long poll gets 'no message'"
    assert parked.elapsed < 5
    assert not senders.wrong, senders.wrong[:5]
    assert len(senders.acked) > 10, "too little traffic to say anything"

    again = run_image(pid1=pid1, data_dir=data_dir).account().get_queue("kept")
    assert again.get_attributes().visibilityTimeout == 45
    kept = _drain(again)
    lost = set(senders.acked) - kept
    assert not lost, f"{len(lost)} acknowledged messages missing after the restart, e.g. {sorted(lost)[:5]}"


# --- docker-compose.yml ------------------------------------------------------------------------

def test_compose_agrees_with_the_image(image: FinalStage):
    """Without a YAML parser: the port and the health check, as the text states them."""
    text = COMPOSE.read_text()
    port = image.env["BROKER_PORT"]
    overridden = re.search(r"^\s*BROKER_PORT:\s*\"?(\d+)", text, re.M)
    port = overridden.group(1) if overridden else port
    published = re.findall(r"^\s*-\s*\"?(?:[\d.]+:)?\d+:(\d+)\"?\s*$", text, re.M)
    assert published == [port], "the broker's container port is the one it listens on"
    test_line = re.search(r"^\s*test:\s*(\[.*\])\s*$", text, re.M)
    assert test_line, "the broker service has a health check in exec form"
    check = json.loads(test_line.group(1))
    assert check[0] == "CMD" and f"127.0.0.1:{port}/healthz" in " ".join(check)
    assert re.search(r"condition:\s*service_healthy", text)
    assert f"http://cmq:{port}" in text, "the app reaches the broker by its service name and port"
    assert re.search(rf"^\s*-\s*cmq-data:{re.escape(image.volumes[0])}\s*$", text, re.M)


def test_compose_healthcheck_command_works(image: FinalStage, run_image):
    text = COMPOSE.read_text()
    check = json.loads(re.search(r"^\s*test:\s*(\[.*\])\s*$", text, re.M).group(1))[1:]
    broker = run_image()
    port = image.env["BROKER_PORT"]
    argv = [arg.replace(f":{port}/", f":{broker.address[1]}/") for arg in check]
    done = subprocess.run(argv, env=broker.env, cwd="/", capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def test_compose_file_parses():
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed; the text checks above still ran")
    spec = yaml.safe_load(COMPOSE.read_text())
    cmq, app = spec["services"]["cmq"], spec["services"]["app"]
    assert app["depends_on"]["cmq"]["condition"] == "service_healthy"
    assert "/healthz" in " ".join(cmq["healthcheck"]["test"])
    assert all(name.startswith("BROKER_") for name in cmq["environment"])
    assert "cmq-data" in spec["volumes"]


# --- the real image, where Docker can build it -------------------------------------------------

def _docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode != 0:
        env["DOCKER_BUILDKIT"] = "0"  # no buildx plugin: the classic builder still reads this Dockerfile
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, env=env)
    if check and done.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}", pytrace=False)
    return done


def _docker_ready() -> str | None:
    if shutil.which("docker") is None:
        return "no docker client"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "the docker daemon does not answer"
    return None if info.returncode == 0 else "no docker daemon"


@pytest.mark.docker
def test_docker_image(image: FinalStage):
    reason = _docker_ready()
    if reason:
        pytest.skip(reason)
    base = os.environ.get("CMQ_TEST_PYTHON_IMAGE", "python:3.11-slim")
    if _docker("image", "inspect", base, check=False).returncode != 0 \
            and _docker("pull", base, timeout=300, check=False).returncode != 0:
        pytest.skip(f"base image {base} is not present and cannot be pulled (set CMQ_TEST_PYTHON_IMAGE)")
    tag, name, volume = (f"cmq-broker-test-{uuid.uuid4().hex[:8]}",) * 3
    _docker("build", "--build-arg", f"PYTHON_IMAGE={base}", "-t", tag, str(REPO_ROOT), timeout=600)
    try:
        def run() -> str:
            _docker("run", "-d", "--name", name, "-p", "127.0.0.1::9876", "-v", f"{volume}:/data",
                    "-e", "BROKER_SECRET_ID=AKIDdocker", "-e", "BROKER_SECRET_KEY=docker-key", tag)
            host_port = _docker("port", name, "9876/tcp").stdout.split()[0].rsplit(":", 1)[1]
            deadline = time.monotonic() + 30
            while (state := _docker("inspect", "-f", "{{.State.Health.Status}}", name).stdout.strip()) != "healthy":
                assert state in ("starting", "") and time.monotonic() < deadline, f"health: {state}"
                time.sleep(0.5)
            return f"http://127.0.0.1:{host_port}"

        url = run()
        assert _docker("exec", name, "id", "-u").stdout.strip() != "0"
        assert server_error(account_for(url, "AKIDdocker", "wrong").get_queue("x").create, queue_meta()).code == 4100
        account = account_for(url, "AKIDdocker", "docker-key")
        account.get_queue("kept").create(queue_meta())
        account.get_queue("kept").send_message(Message("across containers"))
        account.get_queue("empty").create(queue_meta())
        parked = Background(account.get_queue("empty").receive_message, polling_wait_seconds=30)
        time.sleep(0.3)
        started = time.monotonic()
        _docker("stop", name)  # SIGTERM, then SIGKILL after 10 s
        took = time.monotonic() - started
        assert _docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip() == "0"
        assert took < STOP_GRACE / 2, f"docker stop took {took:.1f}s"
        assert parked.wait(5) and getattr(parked.error, "code", None) == 7000
        _docker("rm", name)

        url = run()  # a new container on the same volume
        again = account_for(url, "AKIDdocker", "docker-key").get_queue("kept")
        assert again.receive_message().msgBody == "across containers"
    finally:
        _docker("rm", "-f", name, check=False)
        _docker("volume", "rm", "-f", volume, check=False)
        _docker("rmi", "-f", tag, check=False)
