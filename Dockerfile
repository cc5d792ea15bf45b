# rehost as a container image: the `rehost` command with the PostgreSQL driver (the
# README's `python -m pip install '.[postgres]'`), run as an unprivileged user.
# Configuration is mounted at /config/rehost.toml; tokens, API keys and the database
# password come from the environment only (see deploy/rehost.env.example), never from a
# build argument or a layer. The SQLite database lives on the /data volume.
#
#   docker build -t rehost .
#   docker run --env-file .env -v ./rehost.toml:/config/rehost.toml:ro -v rehost-data:/data rehost
#
# compose.yaml runs it on SQLite, compose.postgres.yaml as several processes on PostgreSQL.

FROM python:3.11-slim AS build
WORKDIR /src
# What the wheel is built from (see [tool.setuptools] in pyproject.toml); .dockerignore
# keeps everything else out of the build context.
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY adapters ./adapters
COPY sandbox ./sandbox
# Wheels of rehost and of everything it needs, so that the final stage installs offline
# and carries no build tools.
RUN python -m pip wheel --no-cache-dir --wheel-dir=/wheels '.[postgres]'

FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --home-dir /data --create-home rehost
# The wheels are mounted for this one step, not copied: no layer keeps them.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install --no-cache-dir --no-index --find-links=/wheels 'rehost-bot[postgres]'
# Where the bot keeps its database, whatever the mounted configuration says, and where it
# serves /healthz and /metrics: on loopback, for the HEALTHCHECK below. To scrape
# /metrics from another container, set REHOST_OBSERVABILITY_LISTEN=0.0.0.0:9464.
ENV REHOST_STORAGE_PATH=/data/rehost.db \
    REHOST_OBSERVABILITY_LISTEN=127.0.0.1:9464 \
    PYTHONUNBUFFERED=1
USER rehost
WORKDIR /data
VOLUME /data
# /healthz answers 200 once the database answers and every adapter is connected.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-m", "bot.healthcheck"]
ENTRYPOINT ["rehost"]
CMD ["run", "-c", "/config/rehost.toml"]
