# unipost-exporter: production image.
#   docker build -t unipost-exporter .
#   docker run -p 9863:9863 -v ./config.yaml:/etc/unipost-exporter/config.yaml:ro \
#     -e UNIPOST_API_KEY unipost-exporter
#   docker run -p 9863:9863 unipost-exporter --demo
FROM python:3.12.8-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY exporter ./exporter
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --no-compile .

FROM python:3.12.8-slim-bookworm
COPY --from=build /opt/venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin exporter \
    && mkdir -p /var/lib/unipost-exporter && chown 10001 /var/lib/unipost-exporter
# The state that survives a restart (--storage.path): last values, statuses, schedules.
VOLUME ["/var/lib/unipost-exporter"]
USER 10001
EXPOSE 9863
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9863/-/healthy', timeout=4)"]
ENTRYPOINT ["unipost-exporter"]
CMD ["--config.file=/etc/unipost-exporter/config.yaml", "--storage.path=/var/lib/unipost-exporter"]
