# One image for every AIQT process: `aiqt paper`, `aiqt worker`, `aiqt gateway` (see compose.yaml).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY aiqt ./aiqt
COPY schemas ./schemas
COPY bus ./bus
COPY gateway ./gateway
COPY worker ./worker
COPY streamer ./streamer
COPY paper ./paper
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /data aiqt \
    && mkdir -p /data \
    && chown aiqt /data

# No secrets here: every credential comes from the environment at run time.
USER aiqt
ENV AIQT_JSON_LOGS=1
EXPOSE 8000 8100 9100
CMD ["aiqt", "--help"]
