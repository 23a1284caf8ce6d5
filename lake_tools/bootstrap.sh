#!/usr/bin/env bash
# What this project needs from the machine, checked in seconds before anything slow starts:
#   lake_tools/bootstrap.sh run    Python 3.11+ and Java 17+ (Spark)
#   lake_tools/bootstrap.sh deploy the same, plus PostgreSQL's server (make deploy-up's storage)
#   lake_tools/bootstrap.sh test   the same, plus Chromium (the UI test drives headless Chromium) and
#                                  PostgreSQL's server (the tests' throwaway database, lake_tools/postgres.py)
# A missing piece is installed with apt-get when this runs as root on Debian/Ubuntu; otherwise the
# script stops with one line saying exactly what to install. `make run`, `make test` and CI call it.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
want="${1:-run}"
apt_updated=0

say() { echo "lake_assets bootstrap: $*" >&2; }

can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

apt_install() {
  local log="${TMPDIR:-/tmp}/lake_assets-apt.log"
  say "installing $* with apt-get (once; about a minute; log: $log)"
  {
    if [ "$apt_updated" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get update -qq; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
  } >"$log" 2>&1 || { tail -n 5 "$log" >&2; say "apt-get could not install $*"; exit 1; }
  apt_updated=1
}

# Python 3.11+: the one thing this script cannot install for you.
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  say "needs Python 3.11 or newer as '$PYTHON' (found: $("$PYTHON" --version 2>&1 || echo none)); install it, or run: make PYTHON=/path/to/python3.11 ..."
  exit 1
fi
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
  if can_apt; then apt_install python3-venv; else
    say "Python's venv module is missing; install it (Debian/Ubuntu: sudo apt-get install python3-venv)"; exit 1
  fi
fi

java_major() {
  local java="${JAVA_HOME:+$JAVA_HOME/bin/}java" major=""
  if command -v "$java" >/dev/null 2>&1; then
    major=$("$java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
  fi
  echo "${major:-0}"
}
if [ "$(java_major)" -lt 17 ]; then
  if can_apt; then apt_install openjdk-17-jre-headless; fi
  if [ "$(java_major)" -lt 17 ]; then
    say "Spark needs Java 17 or newer (found: $(java_major | sed 's/^0$/none/')); install it (Debian/Ubuntu: sudo apt-get install openjdk-17-jre-headless; macOS: brew install openjdk@17) or set JAVA_HOME"
    exit 1
  fi
fi

if [ "$want" = test ] && ! command -v chromium >/dev/null 2>&1; then
  if can_apt; then apt_install chromium; fi
  if ! command -v chromium >/dev/null 2>&1; then
    say "the UI test needs Chromium as 'chromium' on PATH; install it (Debian/Ubuntu: sudo apt-get install chromium)"
    exit 1
  fi
fi

# Debian keeps the server binaries off PATH, in /usr/lib/postgresql/<version>/bin.
have_postgres() { command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }
if [ "$want" != run ] && ! have_postgres; then
  if can_apt; then apt_install postgresql-15; fi
  if ! have_postgres; then
    say "make $want needs PostgreSQL's server (initdb, postgres); install it (Debian: sudo apt-get install postgresql-15; macOS: brew install postgresql@15)"
    exit 1
  fi
fi
