# cmq-broker: a local Tencent Cloud CMQ (API 2.0) and Batch (API 3.0) stand-in.
#   docker build -t cmq-broker .
#   docker run --rm -p 9876:9876 cmq-broker
#
# Every setting is a BROKER_* variable (docker run -e BROKER_SECRET_ID=... -e BROKER_SECRET_KEY=...).
# State: BROKER_DATA_DIR defaults to /data, a declared volume, so a named volume or bind mount
# there keeps queues and messages across container restarts and re-creations. A CI sidecar that
# wants memory only (no fsync per acknowledged change) sets BROKER_DATA_DIR to the empty string,
# which the broker reads as unset.
#
# The README's "Container" section says the same for users; tests/test_container.py runs this
# file's CMD with its ENV and its HEALTHCHECK, so keep them parseable: one ENV block of KEY=VALUE
# pairs, an exec-form CMD, and a single-line health-check command after its options.

ARG PYTHON_IMAGE=python:3.11-slim

# Build stage: the package and its dependencies go into a venv. Every dependency ships binary
# wheels for CPython 3.11 on x86_64 and arm64, so no compiler is needed even here.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /src
# pyproject.toml names README.md as the package's long description, so the build needs it.
COPY pyproject.toml README.md ./
COPY broker ./broker
# pip and setuptools are only needed to install; dropping them keeps ~15 MB out of the image.
RUN /opt/venv/bin/pip install . \
 && /opt/venv/bin/python -m pip uninstall --yes pip setuptools

# Final stage: the same base (the venv's python is a link to the base's interpreter), the
# venv, an unprivileged user, and nothing of the build.
FROM ${PYTHON_IMAGE}
COPY --from=build /opt/venv /opt/venv
# /data is created owned by the broker's user before VOLUME declares it: Docker seeds a new
# named volume with this ownership, so the broker can write there without running as root.
RUN groupadd --system --gid 10001 cmq \
 && useradd --system --uid 10001 --gid cmq --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin cmq \
 && mkdir /data \
 && chown 10001:10001 /data
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BROKER_HOST=0.0.0.0 \
    BROKER_PORT=9876 \
    BROKER_DATA_DIR=/data
VOLUME /data
# The working directory stays /, which holds no broker/ source tree to shadow the installed package.
USER 10001:10001
EXPOSE 9876
# The base image has no curl: ask /healthz with the standard library. Any error (refused,
# timeout, non-2xx) is an uncaught exception, so python exits 1, which Docker reads as unhealthy.
# /healthz answers only once recovery from /data is done, so start-period covers a long replay.
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('BROKER_PORT', '9876'), timeout=2)" || exit 1
# docker stop sends this, then SIGKILL after 10 s: the broker closes its port, answers parked
# long polls with "no message", lets in-flight requests finish, writes a final snapshot and
# exits 0, well inside that grace.
STOPSIGNAL SIGTERM
# Exec form, so python is PID 1 and receives the signal itself. As PID 1 it gets no default
# signal actions from the kernel; the broker installs its own SIGTERM and SIGINT handlers before
# it opens the port, so that is fine (tests/test_container.py checks the stop).
CMD ["python", "-m", "broker", "serve"]
