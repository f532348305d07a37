# Slim, non-root image for `monitor run` (and simulate/replay/dashboards push).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY simulations ./simulations
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 driftline
COPY --from=build /install /usr/local
COPY dashboards /app/dashboards
WORKDIR /app
USER driftline
ENV PYTHONUNBUFFERED=1 MONITOR_WEB_HOST=0.0.0.0
EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=5s CMD python -c "import urllib.request,os; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('MONITOR_WEB_PORT', '6066'), timeout=3)" || exit 1
CMD ["monitor", "run"]
