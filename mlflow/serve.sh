#!/usr/bin/env bash
# A shared MLflow tracking server for a team: runs in a database, artifacts proxied by the server
# (clients need no storage credentials), a login for every request. No __init__.py here: a
# package named mlflow would shadow the real one. mlflow/README.md explains each setting.
#
#   SSLCORE_MLFLOW_ADMIN_PASSWORD=... mlflow/serve.sh             # sqlite in ./mlflow-server/
#   BACKEND=postgresql://mlflow:pw@db:5432/mlflow SSLCORE_MLFLOW_ADMIN_PASSWORD=... \
#     HOST=0.0.0.0 ARTIFACTS=/shared/mlartifacts mlflow/serve.sh
#   AUTH=none mlflow/serve.sh                                     # no login: one person only
set -euo pipefail
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-5000}
DATA=${DATA:-$PWD/mlflow-server}
BACKEND=${BACKEND:-sqlite:///$DATA/mlflow.db}
ARTIFACTS=${ARTIFACTS:-$DATA/artifacts}
WORKERS=${WORKERS:-1}
MLFLOW=${MLFLOW:-mlflow}
AUTH=${AUTH:-basic}
# EDIT: every user may log runs into every experiment (sslcore names one per vertical, created
# by whoever runs it first); only the creator or an admin may delete or share it (MANAGE).
DEFAULT_PERMISSION=${DEFAULT_PERMISSION:-EDIT}
# Checking a password costs ~0.3 s of CPU (PBKDF2) and a run sends ~100 requests: each worker
# remembers a good login this long. A password change or user deletion reaches the worker that
# handled it at once, the others within this time. 0 turns the cache off.
AUTH_CACHE_SECONDS=${AUTH_CACHE_SECONDS:-60}
# MLflow's job runners serve its GenAI features (LLM judges, trace roll-ups), which sslcore does
# not use: 7 more Python processes that keep a small machine busy. true turns them back on.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}
mkdir -p "$DATA"
case $ARTIFACTS in *://*) ;; *) mkdir -p "$ARTIFACTS" ;; esac  # s3://... is the server's

app=()
case $AUTH in
  basic)
    # The auth app keeps its users in its own tables (versioned in alembic_version_auth, no
    # clash with the tracking tables): in the same PostgreSQL database as the runs, or in a
    # sqlite file beside them.
    case $BACKEND in
      sqlite:*) AUTH_DB=${AUTH_DB:-sqlite:///$DATA/basic_auth.db} ;;
      *) AUTH_DB=${AUTH_DB:-$BACKEND} ;;
    esac
    # Written at every start from the settings above; 0600, as it may hold a database password
    # (a %-escaped one becomes %%: the ini is read with configparser's interpolation).
    (umask 077; cat > "$DATA/basic_auth.ini" <<EOF
[mlflow]
default_permission = $DEFAULT_PERMISSION
database_uri = ${AUTH_DB//%/%%}
admin_username = ${SSLCORE_MLFLOW_ADMIN_USER:-admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = $AUTH_CACHE_SECONDS
EOF
    )
    export MLFLOW_AUTH_CONFIG_PATH=$DATA/basic_auth.ini
    # MLflow creates the admin with this password on the first start only (12+ characters;
    # it refuses to start without one); later starts ignore it: change it with
    # `PATCH /api/2.0/mlflow/users/update-password` (mlflow/README.md). Never written to disk.
    if [[ -n ${SSLCORE_MLFLOW_ADMIN_PASSWORD:-} ]]; then
      export MLFLOW_AUTH_ADMIN_PASSWORD=$SSLCORE_MLFLOW_ADMIN_PASSWORD
    fi
    # The auth pages' CSRF key must be the same in every worker and after a restart.
    if [[ -z ${MLFLOW_FLASK_SERVER_SECRET_KEY:-} ]]; then
      [[ -s $DATA/flask_secret_key ]] ||
        (umask 077; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$DATA/flask_secret_key")
      MLFLOW_FLASK_SERVER_SECRET_KEY=$(< "$DATA/flask_secret_key")
      export MLFLOW_FLASK_SERVER_SECRET_KEY
    fi
    app=(--app-name basic-auth) ;;
  none) ;;
  *) echo "serve.sh: AUTH=$AUTH: expected basic (the default) or none" >&2; exit 2 ;;
esac

echo "MLflow server on http://$HOST:$PORT  backend=${BACKEND%%://*}://...  auth=$AUTH" \
  "artifacts=$ARTIFACTS  workers=$WORKERS" >&2
exec "$MLFLOW" server --host "$HOST" --port "$PORT" --workers "$WORKERS" "${app[@]}" \
  --backend-store-uri "$BACKEND" --artifacts-destination "$ARTIFACTS" --serve-artifacts
