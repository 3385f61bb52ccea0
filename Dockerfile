# The example inventory API (and `tenantkit worker`) on tenantkit.
#   docker build -t inventory-app .
#   docker compose up        (PostgreSQL, Redis, MinIO, API and worker; see docs/example-app.md)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TENANTKIT_DATA_DIR=/data

WORKDIR /app
# Only what the wheel needs: the build never sees .venv, .git or local data.
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
COPY examples ./examples
RUN pip install ".[all]" \
    && useradd --system --uid 10001 --home-dir /data --create-home tenantkit

USER tenantkit
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
CMD ["inventory-app", "serve", "--host", "0.0.0.0", "--port", "8000"]
