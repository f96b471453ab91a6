#!/usr/bin/env bash
# Constrained JSON generations validated by ajv. Usage: json_schema_ajv.sh SAMPLES_BINARY WORK_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$2"
"$1" "$here/../data/agent/schemas.json" "$2/samples.json"
node "$here/json_schema_ajv.mjs" "$here/../data/agent/schemas.json" "$2/samples.json"
