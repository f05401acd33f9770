# cmq-broker: a local Tencent Cloud CMQ (queue API 2.0) stand-in.
#   docker build -t cmq-broker .
#   docker run -p 9876:9876 cmq-broker
# Settings are BROKER_* variables (docker run -e BROKER_SECRET_ID=... -e BROKER_SECRET_KEY=...).

ARG PYTHON_IMAGE=python:3.11-slim

# Build stage: install the package and its dependencies into a venv. Every dependency ships
# binary wheels for CPython 3.11, so no compiler is needed here either.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# pyproject.toml names README.md as the package's long description, so the build needs it.
COPY pyproject.toml README.md ./
COPY broker ./broker
RUN /opt/venv/bin/pip install --no-cache-dir .

# Final stage: the same slim base (the venv's python links to its /usr/local/bin/python3.11),
# the venv, and nothing of the build.
FROM ${PYTHON_IMAGE}
COPY --from=build /opt/venv /opt/venv
RUN groupadd --system --gid 10001 cmq \
 && useradd --system --uid 10001 --gid cmq --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin cmq
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BROKER_HOST=0.0.0.0 \
    BROKER_PORT=9876
# The working directory stays /, which holds no broker/ source tree to shadow the installed package.
USER 10001:10001
EXPOSE 9876
# slim has no curl: ask /healthz with the standard library; any error or non-2xx exits 1.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('BROKER_PORT', '9876'), timeout=2)" || exit 1
# The broker drains in-flight requests on SIGTERM (up to 10 s) and exits 0.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "broker", "serve"]
