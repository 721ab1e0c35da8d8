#!/usr/bin/env bash
# A shared MLflow tracking server for a team. No __init__.py here: a package named mlflow
# would shadow the real one.
#
#   mlflow/serve.sh                                  # sqlite store in ./mlflow-server/
#   BACKEND=postgresql://user:pw@db:5432/mlflow mlflow/serve.sh
#   HOST=0.0.0.0 PORT=5000 ARTIFACTS=/shared/mlartifacts mlflow/serve.sh
set -euo pipefail
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-5000}
DATA=${DATA:-$PWD/mlflow-server}
BACKEND=${BACKEND:-sqlite:///$DATA/mlflow.db}
ARTIFACTS=${ARTIFACTS:-$DATA/artifacts}
WORKERS=${WORKERS:-1}
MLFLOW=${MLFLOW:-mlflow}
mkdir -p "$DATA" "$ARTIFACTS" 2>/dev/null || true
echo "MLflow server on http://$HOST:$PORT  backend=${BACKEND%%://*}://...  artifacts=$ARTIFACTS" >&2
exec "$MLFLOW" server --host "$HOST" --port "$PORT" --workers "$WORKERS" \
  --backend-store-uri "$BACKEND" --artifacts-destination "$ARTIFACTS" --serve-artifacts
