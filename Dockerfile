# The CSMS image: `csms serve` by default, `csms worker` with another command (docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY csms ./csms
COPY billing ./billing
COPY web ./web
COPY config.toml ./
RUN pip install --no-cache-dir . \
    && useradd --system --home /app csms \
    && mkdir -p /app/data && chown csms /app/data
USER csms

EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"
CMD ["csms", "serve", "--config", "/app/config.toml", "--host", "0.0.0.0", "--port", "8080"]
