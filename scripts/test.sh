#!/usr/bin/env bash
# Runs every test of the project: formatting and lints, the unit and process tests
# (cargo), the compatibility tests that drive a local cluster with pymesos from PyPI, and
# the browser tests of the web UI (playwright driving Debian's chromium).
# Installs what it needs (Debian's docker.io, busybox-static, zookeeperd, iproute2 and
# chromium with apt-get, Python packages into .venv). Prints one closing line
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

step "python environment (and Debian's chromium) for the compatibility and browser tests"
scripts/python-env.sh

step "compatibility tests (pymesos against mantle local)"
set +e
MANTLE_BIN="$PWD/target/debug/mantle" .venv/bin/python -m pytest -q tests/compat 2>&1 | tee target/pytest.log
pytest_status=${PIPESTATUS[0]}
set -e

step "browser tests (the web UI in headless chromium against mantle local)"
set +e
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 MANTLE_BIN="$PWD/target/debug/mantle" \
    .venv/bin/python -m pytest -q tests/webui 2>&1 | tee target/webui.log
webui_status=${PIPESTATUS[0]}
set -e

count() { { grep -Eho "$1" "$2" || true; } | awk -v f="$3" '{s+=$f} END {print s+0}'; }
passed=$(count 'test result: [a-zA-Z]+\. [0-9]+ passed' target/cargo-test.log 4)
failed=$(count '[0-9]+ failed;' target/cargo-test.log 1)
for log in target/pytest.log target/webui.log; do
    passed=$((passed + $(count '[0-9]+ passed' "$log" 1)))
    failed=$((failed + $(count '[0-9]+ (failed|error)' "$log" 1)))
done
if [[ $cargo_status -ne 0 || $pytest_status -ne 0 || $webui_status -ne 0 ]] && [[ $failed -eq 0 ]]; then
    failed=1
fi
echo
echo "tests: $passed passed, $failed failed"
[[ $cargo_status -eq 0 && $pytest_status -eq 0 && $webui_status -eq 0 ]]
