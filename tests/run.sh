#!/usr/bin/env bash
# Runs Freshet's whole test suite on a fresh clone on a fresh machine.
#
# Installs what the tests need first: a Python virtual environment with pyarrow (the independent
# Parquet reader the end-to-end tests check Freshet's output with) and moto's S3-compatible
# server (which the object storage tests start on a loopback port). Extra arguments go to
# `cargo test` (e.g. `tests/run.sh staleness` runs the tests whose names contain "staleness").
set -euo pipefail
cd "$(dirname "$0")/.."

venv="$PWD/target/test-venv"
if ! "$venv/bin/python" -c 'import pyarrow, moto, boto3, openapi_spec_validator' 2>/dev/null; then
    echo "tests/run.sh: installing pyarrow and moto into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'pyarrow==26.0.1' 'moto[server]==5.2.5' 'openapi-spec-validator==0.9.0'
fi
export FRESHET_TEST_PYTHON="$venv/bin/python"

cargo test --workspace --locked "$@"
