#!/bin/bash
# Runs once inside the influxdb:2 container, right after the initial setup (/docker-entrypoint-initdb.d; the
# entrypoint has configured the influx CLI with the admin token and exports DOCKER_INFLUXDB_INIT_BUCKET_ID).
# Maps InfluxQL database "<bucket>" / retention policy "autogen" to the bucket, so Grafana's InfluxQL dashboards
# (the same ones that run on InfluxDB 1.x) can query it through /query.
set -euo pipefail
bucket="${DOCKER_INFLUXDB_INIT_BUCKET}"
bucket_id="${DOCKER_INFLUXDB_INIT_BUCKET_ID:-}"
if [ -z "${bucket_id}" ]; then
  bucket_id=$(influx bucket list --org "${DOCKER_INFLUXDB_INIT_ORG}" --name "${bucket}" --hide-headers | awk '{print $1}')
fi
influx v1 dbrp create --org "${DOCKER_INFLUXDB_INIT_ORG}" --bucket-id "${bucket_id}" --db "${bucket}" --rp autogen --default
influx v1 dbrp list --org "${DOCKER_INFLUXDB_INIT_ORG}"
