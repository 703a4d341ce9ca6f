# poe2openai: docker build -t poe2openai . && docker run -p 8080:8080 --ulimit nofile=65536:65536 -v ./data:/data poe2openai
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HOST=0.0.0.0 \
    PORT=8080 \
    CONFIG_DIR=/data \
    LOG_LEVEL=info

WORKDIR /app
COPY setup.cfg pyproject.toml README.md ./
COPY poe2openai ./poe2openai
COPY static ./static
RUN pip install . \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin poe2openai \
 && mkdir -p /data && chown poe2openai:poe2openai /data

USER poe2openai
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8080') + '/healthz', timeout=4)"]
STOPSIGNAL SIGTERM
CMD ["poe2openai"]
