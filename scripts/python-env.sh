#!/usr/bin/env bash
# Create (or refresh) the Python virtualenv used by the pymesos examples, the
# compatibility tests in tests/compat and the browser tests in tests/webui
# (playwright, driving Debian's chromium, which this script installs with apt-get
# when /usr/bin/chromium is missing; playwright never downloads a browser here).
#
#   scripts/python-env.sh            # venv at <repo>/.venv
#   MANTLE_VENV=/some/dir scripts/python-env.sh
#
# pymesos 0.3.15 depends on http-parser 0.9.0, whose C extension no longer
# builds on Python 3.11. pymesos works with http-parser's pure-Python parser
# (http_parser.pyparser), so we install pymesos without dependencies and put
# only the .py modules of http-parser into site-packages.
#
# Re-running is cheap: a marker file records what was installed.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MANTLE_VENV:-$REPO/.venv}"
PYTHON="${PYTHON:-python3}"

PYMESOS_VERSION="0.3.15"
HTTP_PARSER_VERSION="0.9.0"
# Extra pure-Python dependencies of pymesos (installed unpinned, as recommended),
# and the test tools.
EXTRA_DEPS=(six addict kazoo pytest playwright)
CHROMIUM=/usr/bin/chromium
# playwright's own browser builds are never fetched: the tests use Debian's chromium.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

MARKER_CONTENT="pymesos=${PYMESOS_VERSION} http-parser=${HTTP_PARSER_VERSION}(pure-python) deps=${EXTRA_DEPS[*]}"
MARKER="$VENV/.mantle-python-env"

log() { printf '[python-env] %s\n' "$*"; }

verify() {
    "$VENV/bin/python" -c \
        "import pymesos; from pymesos import MesosSchedulerDriver, MesosExecutorDriver; import http_parser.http, http_parser.pyparser, pytest, playwright.sync_api" \
        >/dev/null 2>&1
}

# --- 0. Debian's chromium for the browser tests ----------------------------
if [[ ! -x "$CHROMIUM" ]]; then
    log "$CHROMIUM missing: installing Debian's chromium with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi

if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$MARKER_CONTENT" ]] && verify; then
    log "already set up at $VENV ($MARKER_CONTENT)"
    exit 0
fi

# --- 1. the virtualenv ---------------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
    if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        log "python3 venv/ensurepip missing: installing python3-venv with apt-get"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    fi
    log "creating virtualenv at $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
else
    log "reusing virtualenv at $VENV"
fi
VPY="$VENV/bin/python"
"$VPY" -c 'import sys; assert sys.version_info >= (3, 8), sys.version' \
    || { log "python in $VENV is too old"; exit 1; }

# --- 2. pymesos and its pure-Python dependencies ---------------------------
log "installing pymesos==$PYMESOS_VERSION (no deps) and ${EXTRA_DEPS[*]}"
"$VPY" -m pip install -q --disable-pip-version-check --no-deps "pymesos==$PYMESOS_VERSION" six addict kazoo
"$VPY" -m pip install -q --disable-pip-version-check pytest playwright

# --- 3. http-parser's pure-Python modules ---------------------------------
SITE="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
log "fetching the http-parser==$HTTP_PARSER_VERSION sdist"
"$VPY" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
    -d "$TMP" "http-parser==$HTTP_PARSER_VERSION"
SDIST="$(ls "$TMP"/http-parser-*.tar.gz "$TMP"/http_parser-*.tar.gz 2>/dev/null | head -n1 || true)"
[[ -n "$SDIST" ]] || { log "http-parser sdist not found in $TMP"; exit 1; }
tar -xzf "$SDIST" -C "$TMP"
SRC="$(find "$TMP" -mindepth 2 -maxdepth 2 -type d -name http_parser | head -n1)"
[[ -n "$SRC" ]] || { log "no http_parser/ package inside $SDIST"; exit 1; }

log "copying http_parser/*.py into $SITE/http_parser (C extension left out)"
rm -rf "$SITE/http_parser"
mkdir -p "$SITE/http_parser"
cp "$SRC"/*.py "$SITE/http_parser/"
# compile now so that its old-style regex escapes do not warn at every import
"$VPY" -W ignore -m compileall -q "$SITE/http_parser" >/dev/null
# pymesos imports http_parser.http, which falls back to http_parser.pyparser
# when the compiled http_parser.parser is absent: make sure it is absent.
if "$VPY" -c 'import http_parser.parser' >/dev/null 2>&1; then
    log "unexpected: a compiled http_parser.parser is importable"; exit 1
fi

# --- 4. verification ------------------------------------------------------
log "verifying imports"
"$VPY" -c "import pymesos; from pymesos import MesosSchedulerDriver, MesosExecutorDriver"
"$VPY" -c "from http_parser.http import HttpParser; import http_parser.pyparser as p; assert HttpParser is p.HttpParser"
"$VPY" -c "import playwright.sync_api"
verify
printf '%s' "$MARKER_CONTENT" > "$MARKER"
log "done: $VENV ($("$VPY" --version 2>&1), pymesos $PYMESOS_VERSION)"
