#!/usr/bin/env bash
# Smoke test of Chalkweb's Kubernetes executor on a real cluster (kind, k3s or any other):
# deploys six functions with the SDK, runs each once through the REST API, cancels one while it
# runs, and prints each run's status beside the status to expect. Exits 1 on any difference.
#
#   export CHALK_COMPUTE_URL=http://127.0.0.1:8000 CHALK_COMPUTE_TOKEN=<an API token>
#   deploy/kubernetes/smoke.sh
#
# Needs curl and a python3 that can import chalkcompute (the checkout's .venv/bin/python, set
# PYTHON to it, or any python3: the script puts the checkout on PYTHONPATH). The first run of
# an image waits for its build, so allow minutes (SMOKE_DEADLINE_SECONDS, default 900).
set -euo pipefail

: "${CHALK_COMPUTE_URL:?set CHALK_COMPUTE_URL to the Chalkweb server, e.g. http://127.0.0.1:8000}"
: "${CHALK_COMPUTE_TOKEN:?set CHALK_COMPUTE_TOKEN (python manage.py create_token smoke)}"
PYTHON=${PYTHON:-python3}
DEADLINE_SECONDS=${SMOKE_DEADLINE_SECONDS:-900}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cat >"$WORK/chalkweb_smoke.py" <<'PY'
"""The smoke test's functions: one per outcome the Kubernetes executor must report."""

import os
import time

import chalkcompute
from chalk import chalk_logger


@chalkcompute.function(name="smoke-success", timeout=300)
def smoke_success() -> None:
    chalk_logger.info("hello from the cluster")


@chalkcompute.function(name="smoke-exit-1", timeout=300)
def smoke_exit_1() -> None:
    print("exiting with code 1")
    os._exit(1)


@chalkcompute.function(name="smoke-out-of-memory", memory="128Mi", timeout=300)
def smoke_out_of_memory() -> None:
    hoard = []
    while True:
        hoard.append(bytearray(32 * 2**20))  # zero-filled: every page is touched
        time.sleep(0.05)


@chalkcompute.function(
    name="smoke-bad-image",
    image=chalkcompute.Image.debian_slim().pip_install("chalkweb-smoke-no-such-package"),
    timeout=300,
)
def smoke_bad_image() -> None:
    pass


@chalkcompute.function(name="smoke-timeout", timeout=10)
def smoke_timeout() -> None:
    time.sleep(600)


@chalkcompute.function(name="smoke-cancel", timeout=900)
def smoke_cancel() -> None:
    chalk_logger.info("waiting to be cancelled")
    time.sleep(600)
PY

ORDER=(smoke-success smoke-exit-1 smoke-out-of-memory smoke-bad-image smoke-timeout smoke-cancel)
declare -A EXPECTED=(
  [smoke-success]=succeeded
  [smoke-exit-1]=failed
  [smoke-out-of-memory]=failed
  [smoke-bad-image]=failed
  [smoke-timeout]=timed_out
  [smoke-cancel]=cancelled
)
declare -A REASON=(
  [smoke-success]="(none)"
  [smoke-exit-1]="the function's process exited with code 1 without a result"
  [smoke-out-of-memory]="OutOfMemory: out of memory: used ... (the runner's check), or out of memory: the container exceeded its memory limit 128Mi (OOMKilled)"
  [smoke-bad-image]="image build failed; ... No matching distribution (install-at-start: exit_code: ... code 1)"
  [smoke-timeout]="timed out after 10 seconds"
  [smoke-cancel]="cancelled while running (or: cancelled: its Job was deleted ...)"
)
FINISHED='^(succeeded|failed|timed_out|cancelled|lost|skipped)$'

api() { # METHOD PATH: prints the JSON answer
  curl --silent --show-error --fail-with-body -X "$1" \
    -H "Authorization: Bearer $CHALK_COMPUTE_TOKEN" -H "Accept: application/json" \
    "${CHALK_COMPUTE_URL%/}$2"
}

field() { # NAME: reads JSON on stdin, prints one top-level field on one line
  "$PYTHON" -c 'import json, sys; v = json.load(sys.stdin).get(sys.argv[1]); print("" if v is None else str(v).replace("\n", " "))' "$1"
}

status_of() { api GET "/api/v1/runs/$1" | field status; }

echo "Deploying the smoke functions to $CHALK_COMPUTE_URL"
"$PYTHON" -m chalkcompute.cli deploy "$WORK/chalkweb_smoke.py"

declare -A RUN
for name in "${ORDER[@]}"; do
  RUN[$name]=$(api POST "/api/v1/functions/$name/trigger" | field id)
  echo "  triggered $name: run ${RUN[$name]}"
done

deadline=$((SECONDS + DEADLINE_SECONDS))
echo "Waiting for smoke-cancel to run, to cancel it"
until [ "$(status_of "${RUN[smoke-cancel]}")" = running ]; do
  if ((SECONDS > deadline)); then
    echo "  smoke-cancel never started running" >&2
    break
  fi
  sleep 2
done
api POST "/api/v1/runs/${RUN[smoke-cancel]}/cancel" >/dev/null || true

echo "Waiting for every run to end (at most ${DEADLINE_SECONDS}s in all)"
for name in "${ORDER[@]}"; do
  until [[ $(status_of "${RUN[$name]}") =~ $FINISHED ]]; do
    if ((SECONDS > deadline)); then
      echo "  $name (run ${RUN[$name]}) has not ended" >&2
      break
    fi
    sleep 3
  done
done

differences=0
printf '\n%-20s %-10s %-10s %s\n' FUNCTION EXPECTED GOT "REASON (expected / got)"
for name in "${ORDER[@]}"; do
  answer=$(api GET "/api/v1/runs/${RUN[$name]}")
  got=$(field status <<<"$answer")
  reason=$(field status_reason <<<"$answer" | cut -c1-160)
  mark=""
  if [ "$got" != "${EXPECTED[$name]}" ]; then
    mark="   <-- DIFFERENT"
    differences=$((differences + 1))
  fi
  printf '%-20s %-10s %-10s %s\n' "$name" "${EXPECTED[$name]}" "$got$mark" "${REASON[$name]}"
  printf '%-20s %-10s %-10s %s\n' "" "" "" "${reason:-(none)}"
done
echo
echo "Runs: ${CHALK_COMPUTE_URL%/}/api/v1/runs?function=smoke-success (and the console's run pages)"
if ((differences)); then
  echo "$differences run(s) ended differently than expected" >&2
  exit 1
fi
echo "All six runs ended as expected."
