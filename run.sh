#!/usr/bin/env bash
# One entry point for a fresh machine:
#   ./run.sh app          set up .venv (first time), start the dashboard on http://127.0.0.1:8501
#   ./run.sh test [ARGS]  set up .venv + Debian's chromium and postgresql (first time), run the whole test suite
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

setup_venv() {  # $1: requirements file
  local req=$1 stamp=.venv/.cmkt-installed
  local want; want=$(cat "$req" requirements.txt pyproject.toml | sha256sum | cut -c1-16)-$req
  if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $PY" >&2
    "$PY" -m venv .venv
  fi
  if [ ! -f "$stamp" ] || ! grep -qx -- "$want" "$stamp"; then
    echo "[setup] installing $req into .venv" >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install -q --disable-pip-version-check -r "$req"
    .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . \
      || .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
    echo "$want" >> "$stamp"
  fi
}

setup_chromium() {
  [ -x /usr/bin/chromium ] && return 0
  echo "[setup] installing Debian's chromium for the browser tests" >&2
  local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium >/dev/null
}

setup_postgres() {   # server binaries for tests/test_serve_postgres.py (it starts its own server)
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && return 0
  command -v apt-get >/dev/null 2>&1 || return 0     # the PostgreSQL tests then skip, saying why
  echo "[setup] installing Debian's postgresql for the service tests" >&2
  local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q postgresql >/dev/null
}

cmd=${1:-app}; shift || true
case "$cmd" in
  app)
    setup_venv requirements.txt
    exec .venv/bin/python -m streamlit run dashboard/app.py "$@"
    ;;
  test)
    setup_venv requirements-dev.txt
    setup_chromium
    setup_postgres
    exec .venv/bin/python -m pytest "$@"
    ;;
  *)
    echo "usage: ./run.sh app | test [pytest args]" >&2; exit 2 ;;
esac
