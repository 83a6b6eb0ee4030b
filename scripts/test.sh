#!/usr/bin/env bash
# Run the test suite (real firmware in real QEMU included). Installs first if the environment is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Every tool the tests need is installed above: a test whose tool is missing fails instead of skipping.
export TINYHIL_REQUIRE_TOOLS=1
exec .venv/bin/python -m pytest -n "${TINYHIL_TEST_JOBS:-2}" -q tests "$@"
