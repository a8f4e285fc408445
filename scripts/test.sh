#!/usr/bin/env bash
# Runs every test of the project: formatting and lints, the unit and process tests
# (cargo), and the compatibility tests that drive a local cluster with pymesos from PyPI.
# Installs what it needs (Debian's docker.io, busybox-static, zookeeperd and iproute2 with
# apt-get, Python packages into .venv). Prints one closing line
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

step "docker engine and test image for the Docker containerizer tests"
scripts/ensure-docker.sh

step "ZooKeeper (Debian's zookeeperd) for the ZooKeeper tests"
scripts/ensure-zookeeper.sh

step "ip (iproute2) for the system tests' network namespaces"
if ! command -v ip >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2
fi

step "unit and process tests (cargo test)"
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee target/cargo-test.log
cargo_status=${PIPESTATUS[0]}
set -e

step "python environment for the compatibility tests"
scripts/python-env.sh

step "compatibility tests (pymesos against mantle local)"
set +e
MANTLE_BIN="$PWD/target/debug/mantle" .venv/bin/python -m pytest -q tests/compat 2>&1 | tee target/pytest.log
pytest_status=${PIPESTATUS[0]}
set -e

count() { { grep -Eho "$1" "$2" || true; } | awk -v f="$3" '{s+=$f} END {print s+0}'; }
passed=$(count 'test result: [a-zA-Z]+\. [0-9]+ passed' target/cargo-test.log 4)
failed=$(count '[0-9]+ failed;' target/cargo-test.log 1)
py_passed=$(count '[0-9]+ passed' target/pytest.log 1)
py_failed=$(count '[0-9]+ (failed|error)' target/pytest.log 1)
passed=$((passed + ${py_passed:-0}))
failed=$((failed + ${py_failed:-0}))
if [[ $cargo_status -ne 0 || $pytest_status -ne 0 ]] && [[ $failed -eq 0 ]]; then
    failed=1
fi
echo
echo "tests: $passed passed, $failed failed"
[[ $cargo_status -eq 0 && $pytest_status -eq 0 ]]
