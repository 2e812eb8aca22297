#!/usr/bin/env bash
# A newcomer's first run, for real: clone this repository into a temp folder and run the README's two
# commands as written. `make demo` until its explorer URL answers (/, /health and a persona's API),
# then stop it; then `make test`. Prints both wall times; exits non-zero if either fails.
#
#   scripts/newcomer.sh [--keep] [--skip-test]
#
# ../shared beside this checkout (the project's data, as CI has it) is linked beside the clone.
# --keep leaves the temp folder for a look afterwards; --skip-test stops after the demo.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
keep=0
run_tests=1
for arg in "$@"; do
  case "$arg" in
    --keep) keep=1 ;;
    --skip-test) run_tests=0 ;;
    *) echo "usage: $0 [--keep] [--skip-test]" >&2; exit 2 ;;
  esac
done

url="http://127.0.0.1:8765"
demo_wait_s="${NEWCOMER_DEMO_WAIT_S:-3600}"  # set-up compiles llama.cpp the first time (~15 min)

if curl -s -o /dev/null "$url/health"; then
  echo "newcomer: something already answers on $url; stop it first (the demo serves on port 8765)" >&2
  exit 2
fi

work="$(mktemp -d /tmp/newcomer.XXXXXX)"
demo_pid=""
cleanup() {
  if [ -n "$demo_pid" ] && kill -0 "$demo_pid" 2>/dev/null; then
    kill -TERM -- "-$demo_pid" 2>/dev/null || true
    sleep 2
    kill -KILL -- "-$demo_pid" 2>/dev/null || true
  fi
  # the demo's embedded database outlives the command that started it (by design): stop it
  if [ -x "$work/main/.venv/bin/persona" ]; then
    (cd "$work/main" && .venv/bin/persona db stop >/dev/null 2>&1) || true
  fi
  if [ "$keep" -eq 0 ]; then rm -rf "$work"; else echo "newcomer: kept $work"; fi
}
trap cleanup EXIT

echo "newcomer: cloning $here into $work/main"
git clone --quiet "$here" "$work/main"
if [ -d "$here/../shared" ]; then ln -s "$(cd "$here/../shared" && pwd)" "$work/shared"; fi
cd "$work/main"

# README command 1: make demo (set-up, the demo pipeline, then the explorer), in its own process group.
echo "newcomer: make demo (log: $work/demo.log)"
start=$(date +%s)
setsid make demo >"$work/demo.log" 2>&1 < /dev/null &
demo_pid=$!
until curl -s -o /dev/null "$url/health"; do
  if ! kill -0 "$demo_pid" 2>/dev/null; then
    echo "newcomer: make demo exited before the explorer answered; last lines:" >&2
    tail -40 "$work/demo.log" >&2
    exit 1
  fi
  if [ $(( $(date +%s) - start )) -gt "$demo_wait_s" ]; then
    echo "newcomer: the explorer did not answer within ${demo_wait_s}s; last lines:" >&2
    tail -40 "$work/demo.log" >&2
    exit 1
  fi
  sleep 2
done
demo_s=$(( $(date +%s) - start ))
for path in / /health /users/ana; do
  code=$(curl -s -o "$work/page.out" -w '%{http_code}' "$url$path")
  if [ "$code" != "200" ]; then
    echo "newcomer: GET $path answered $code:" >&2
    head -c 2000 "$work/page.out" >&2
    exit 1
  fi
done
grep -q '"facts"' "$work/page.out" || { echo "newcomer: /users/ana has no facts" >&2; exit 1; }
kill -TERM -- "-$demo_pid"
wait "$demo_pid" 2>/dev/null || true
demo_pid=""
echo "newcomer: make demo → explorer answered after ${demo_s}s (set-up included); /, /health, /users/ana: 200"

if [ "$run_tests" -eq 1 ]; then
  echo "newcomer: make test (log: $work/test.log)"
  start=$(date +%s)
  status=0
  make test >"$work/test.log" 2>&1 < /dev/null || status=$?
  test_s=$(( $(date +%s) - start ))
  tail -5 "$work/test.log"
  echo "newcomer: make test exited $status after ${test_s}s"
  [ "$status" -eq 0 ] || exit "$status"
fi
echo "newcomer: passed"
