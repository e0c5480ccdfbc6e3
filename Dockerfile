# lorakom: MQTT bridge and API in one image.
#
#   docker build -t lorakom .
#   docker run --env-file deploy/lorakom.env -v ./sources.toml:/etc/lorakom/sources.toml:ro lorakom
#
# The entrypoint applies migrations (`lorakom db upgrade`), then runs the command,
# by default `lorakom run --config /etc/lorakom/sources.toml`.

# --- build: install the project and its dependencies into a virtual environment -----
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/lorakom

WORKDIR /src
COPY pyproject.toml README* ./
COPY domain ./domain
COPY decoders ./decoders
COPY storage ./storage
COPY services ./services
COPY ingest ./ingest
COPY api ./api
COPY cli ./cli
RUN /opt/lorakom/bin/pip install . \
    && /opt/lorakom/bin/python -c "import api.app, cli.main, storage.schema"

# --- runtime -------------------------------------------------------------------------
FROM python:3.11-slim

ENV PATH=/opt/lorakom/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LORAKOM_API_HOST=0.0.0.0 \
    LORAKOM_API_PORT=8000

RUN groupadd --system --gid 10001 lorakom \
    && useradd --system --uid 10001 --gid lorakom --home-dir /var/lib/lorakom --create-home \
       --shell /usr/sbin/nologin lorakom \
    && mkdir -p /etc/lorakom

COPY --from=build /opt/lorakom /opt/lorakom
COPY deploy/docker-entrypoint.sh /usr/local/bin/lorakom-entrypoint

USER lorakom
WORKDIR /var/lib/lorakom
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('LORAKOM_API_PORT', '8000') + '/healthz', timeout=4)"]

ENTRYPOINT ["lorakom-entrypoint"]
CMD ["run", "--config", "/etc/lorakom/sources.toml"]
