# okrsync in a small image: non-root, the store on a volume, secrets from env or a mounted directory.
#   docker build -t okrsync .
#   docker run --rm -v okrsync-data:/data -v $PWD/okrsync.yaml:/config/okrsync.yaml:ro \
#       -e OKRSYNC_SOURCES__GITHUB__TOKEN okrsync run --every 15m
# /config is read-only: write reports to the data volume with absolute paths in okrsync.yaml, e.g.
# report: {path: /data/report.html, json: /data/status.json} (see examples/deploy/kubernetes/okrsync.yaml).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY okrsync ./okrsync
COPY connectors ./connectors
COPY engine ./engine
COPY mappings ./mappings
COPY config ./config
COPY domain ./domain
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin okrsync \
    && mkdir -p /data /config /run/secrets/okrsync && chown okrsync /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
ENV OKRSYNC_DB=/data/okrsync.db \
    OKRSYNC_SECRETS_DIR=/run/secrets/okrsync \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
WORKDIR /data
USER okrsync
ENTRYPOINT ["okrsync", "--log-format", "json", "-w", "/config/okrsync.yaml"]
CMD ["run", "--every", "15m"]
