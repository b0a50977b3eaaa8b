# syntax=docker/dockerfile:1
# Lyra as a container: `docker build -t lyra-bot .`, then see compose.yaml and docs/deploy.md.
# Stage 1 builds wheels of Lyra and every dependency; stage 2 installs them without a
# compiler, a cache or the source tree, and runs as an unprivileged user.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY lyra_bot ./lyra_bot
COPY adapters ./adapters
COPY handlers ./handlers
COPY templates ./templates
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LYRA_HTTP_HOST=0.0.0.0 \
    LYRA_HTTP_PORT=8080 \
    LYRA_DATABASE_URL=sqlite:///var/lib/lyra/lyra.db \
    LYRA_OUTBOX_DIR=/var/lib/lyra/outbox \
    LYRA_LOG_FORMAT=json
RUN groupadd --system --gid 10001 lyra \
    && useradd --system --uid 10001 --gid lyra --home-dir /var/lib/lyra --create-home lyra
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/lyra_bot-*.whl
USER 10001:10001
WORKDIR /var/lib/lyra
VOLUME ["/var/lib/lyra"]
EXPOSE 8080
# Liveness: /healthz answers while the process runs (readiness, /readyz, is for the proxy).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:' + os.environ.get('LYRA_HTTP_PORT', '8080') + '/healthz', timeout=4)"]
CMD ["lyra-bot", "run"]
