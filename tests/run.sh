#!/usr/bin/env bash
# Runs Freshet's whole test suite on a fresh clone on a fresh machine.
#
# Installs what the tests need first: a Python virtual environment with pyarrow (the independent
# Parquet reader the end-to-end tests check Freshet's output with), moto's S3-compatible server
# (which the object storage tests start on a loopback port) and openapi-spec-validator; Debian's
# Chromium and playwright-core from npm for the browser tests of the web view; PostgreSQL's server
# binaries (Debian's), of which it starts a throwaway cluster on a loopback port, removed at the
# end. Then the whole suite, and the integration tests a second time with PostgreSQL as every
# project's store. The tests that load every core on purpose (`control_plane::`: CPU-bound steps
# beside busy loops) run on their own after each pass, so they neither slow the rest nor are
# slowed by it. Extra arguments go to `cargo test` (e.g. `tests/run.sh staleness` runs the
# tests whose names contain "staleness").
set -euo pipefail
cd "$(dirname "$0")/.."

venv="$PWD/target/test-venv"
if ! "$venv/bin/python" -c 'import pyarrow, moto, boto3, openapi_spec_validator' 2>/dev/null; then
    echo "tests/run.sh: installing pyarrow and moto into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'pyarrow==26.0.1' 'moto[server]==5.2.5' 'openapi-spec-validator==0.9.0'
fi
export FRESHET_TEST_PYTHON="$venv/bin/python"

missing=""
command -v chromium >/dev/null || missing="$missing chromium"
command -v npm >/dev/null || missing="$missing nodejs npm"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"
if [ -n "$missing" ]; then
    echo "tests/run.sh: installing$missing (Debian packages)" >&2
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
export CHROMIUM="${CHROMIUM:-$(command -v chromium)}"
if [ ! -d tests/e2e/node_modules/playwright-core ]; then
    echo "tests/run.sh: installing playwright-core into tests/e2e/node_modules" >&2
    npm ci --prefix tests/e2e --no-audit --no-fund --loglevel=error
fi

# An assignment, so that a cluster that does not start stops the script here.
postgres_env="$(tests/postgres.sh start)"
eval "$postgres_env"
trap 'tests/postgres.sh stop "$FRESHET_TEST_PGDIR"' EXIT

alone=(-p freshet-assets --test it control_plane:: -- --test-threads 1)
cargo test --workspace --locked "$@" -- --skip control_plane::
cargo test --locked "${alone[@]}"
echo "tests/run.sh: the integration tests again, on PostgreSQL" >&2
FRESHET_TEST_STORE=postgres cargo test --locked -p freshet-assets --test it "$@" -- --skip control_plane::
FRESHET_TEST_STORE=postgres cargo test --locked "${alone[@]}"
