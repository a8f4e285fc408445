#!/usr/bin/env bash
# Runs every test of the project: formatting and lints, the unit and process tests
# (cargo), and the compatibility tests that drive a local cluster with pymesos from PyPI.
# Installs what it needs (Python packages into .venv). Prints one closing line
# "tests: N passed, N failed".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }
mkdir -p target

step "formatting (cargo fmt --check)"
cargo fmt --all -- --check

step "lints (cargo clippy -D warnings)"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "building the binaries once for every test level"
cargo build --workspace --bins --quiet

step "unit and process tests (cargo test)"
set +e
cargo test --workspace 2>&1 | tee target/cargo-test.log
cargo_status=${PIPESTATUS[0]}
set -e

step "python environment for the compatibility tests"
scripts/python-env.sh

step "compatibility tests (pymesos against mantle local)"
set +e
MANTLE_BIN="$PWD/target/debug/mantle" .venv/bin/python -m pytest -q tests/compat 2>&1 | tee target/pytest.log
pytest_status=${PIPESTATUS[0]}
set -e

passed=$(grep -ho 'test result: [a-zA-Z]*\. [0-9]* passed' target/cargo-test.log | awk '{s+=$4} END {print s+0}')
failed=$(grep -ho '[0-9]* failed;' target/cargo-test.log | awk '{s+=$1} END {print s+0}')
py_passed=$(grep -Eo '[0-9]+ passed' target/pytest.log | tail -1 | awk '{print $1+0}')
py_failed=$(grep -Eo '[0-9]+ (failed|error)' target/pytest.log | awk '{s+=$1} END {print s+0}')
passed=$((passed + ${py_passed:-0}))
failed=$((failed + ${py_failed:-0}))
if [[ $cargo_status -ne 0 || $pytest_status -ne 0 ]] && [[ $failed -eq 0 ]]; then
    failed=1
fi
echo
echo "tests: $passed passed, $failed failed"
[[ $cargo_status -eq 0 && $pytest_status -eq 0 ]]
