# Slim, non-root image for `monitor run` (and simulate / replay / reference build / dashboards push).
#   docker build -t driftline/monitor .
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY monitor ./monitor
RUN pip install --prefix=/install .

FROM python:3.11-slim
RUN groupadd --gid 10001 nonroot && useradd --uid 10001 --gid nonroot --create-home --shell /usr/sbin/nologin nonroot
COPY --from=build /install /usr/local
# `monitor dashboards push` finds the bundled dashboards here
COPY --chown=root:root dashboards /app/dashboards
WORKDIR /app
USER nonroot
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 MONITOR_WEB_HOST=0.0.0.0
EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('MONITOR_WEB_PORT', '6066'), timeout=3)" || exit 1
CMD ["monitor", "run"]
