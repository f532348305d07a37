#!/bin/bash
# Runs once inside the influxdb:2 container after setup (docker-entrypoint-initdb.d):
# map the InfluxQL database/retention policy to the bucket so Grafana's InfluxQL queries work.
set -euo pipefail
bucket_id=$(influx bucket list --name "${DOCKER_INFLUXDB_INIT_BUCKET}" --hide-headers | awk '{print $1}')
influx v1 dbrp create --db "${DOCKER_INFLUXDB_INIT_BUCKET}" --rp autogen --bucket-id "${bucket_id}" --default
