# rehost as a container image: the `rehost` command and the PostgreSQL driver, run as an
# unprivileged user. Configuration is mounted at /config/rehost.toml; tokens, API keys and
# the database password come from the environment only (see deploy/rehost.env.example).
#
#   docker build -t rehost .
#   docker run --env-file .env -v ./rehost.toml:/config/rehost.toml:ro -v rehost-data:/data rehost

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY adapters ./adapters
COPY sandbox ./sandbox
# Wheels of rehost and of everything it needs, so the final stage installs offline and
# carries no build tools.
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels '.[postgres]'

FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --home-dir /data --create-home rehost
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir --no-index --find-links=/wheels 'rehost-bot[postgres]' \
    && rm -rf /wheels
USER rehost
WORKDIR /data
# The SQLite database, when no PostgreSQL is configured ([storage] path = "/data/rehost.db").
VOLUME /data
ENTRYPOINT ["rehost"]
CMD ["run", "-c", "/config/rehost.toml"]
