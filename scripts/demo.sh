#!/usr/bin/env bash
# The local demo behind `make run`: moto_server as Secrets Manager, the Clear emulator with
# short-lived tokens, and `rotator run` in the foreground with its log on the terminal. It builds
# nothing itself (`make run` builds bin/rotator and bin/clear-emulator first). Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."

SECRET_ID=demo/clear-token

# The demo must be able to run all day. A token is renewed when a third of its lifetime is left,
# so every two thirds of a lifetime: 12-minute tokens are renewed every 8 minutes, 180 times a day,
# which fits under a daily limit of 250 (the most the rotator allows itself, against Clear's 288)
# with room for forced rotations. With the default limit of 48 the demo would stop renewing.
TOKEN_MINUTES=12
DAILY_LIMIT=250
RENEW_EVERY_SECONDS=$((TOKEN_MINUTES * 60 * 2 / 3))
PER_DAY=$((86400 / RENEW_EVERY_SECONDS))
if ((PER_DAY > DAILY_LIMIT)); then
  echo "demo: $TOKEN_MINUTES-minute tokens need $PER_DAY requests a day, over the limit of $DAILY_LIMIT" >&2
  exit 1
fi
# The emulator's only client secret. It is made up, and like any client secret it must never appear
# in the rotator's log; the demo shows that it does not.
CLIENT_SECRET=${DEMO_CLIENT_SECRET:-demo-client-secret-$RANDOM$RANDOM}

# The binaries, and the ops listener's address: the test of this script (scripts/demo_test.go)
# names its own; `make run` leaves them unset.
ROTATOR=${DEMO_ROTATOR:-bin/rotator}
EMULATOR=${DEMO_EMULATOR:-bin/clear-emulator}

for bin in "$ROTATOR" "$EMULATOR"; do
  if [[ ! -x $bin ]]; then
    echo "demo: $bin is missing; run \`make run\` (which builds it) or \`make build\`" >&2
    exit 1
  fi
done
if ! command -v moto_server >/dev/null; then
  echo "demo: moto_server (the Secrets Manager emulator) is not installed." >&2
  echo "      Install it with: pip install \"moto[server]\"   (or run: make test-deps)" >&2
  exit 1
fi

tmp=$(mktemp -d)
children=()
cleanup() {
  # moto and the emulator run in the background, where a non-interactive shell ignores SIGINT,
  # so Ctrl-C does not reach them: stop them here.
  for pid in "${children[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# listening PORT succeeds when something accepts connections on 127.0.0.1:PORT.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for DESCRIPTION COMMAND...: retry COMMAND for up to 30 seconds.
wait_for() {
  local what=$1
  shift
  for _ in $(seq 300); do
    if "$@"; then return 0; fi
    sleep 0.1
  done
  echo "demo: $what did not come up within 30s" >&2
  return 1
}

moto_port=$(free_port)
moto_server -H 127.0.0.1 -p "$moto_port" >"$tmp/moto.log" 2>&1 &
children+=($!)
wait_for "moto_server on port $moto_port" listening "$moto_port"

# The secret goes in through the environment, not a flag, so that it does not show in ps.
CLEAR_EMULATOR_SECRETS=$CLIENT_SECRET "$EMULATOR" -addr 127.0.0.1:0 -lifetime "${TOKEN_MINUTES}m" >"$tmp/emulator.out" 2>"$tmp/emulator.log" &
children+=($!)
wait_for "the Clear emulator" grep -qs '^listening on ' "$tmp/emulator.out"
clear_url=$(sed -n 's/^listening on //p' "$tmp/emulator.out")

ops_addr=${DEMO_OPS_ADDR:-127.0.0.1:9090}
if [[ -z ${DEMO_OPS_ADDR:-} ]] && listening 9090; then
  ops_addr=127.0.0.1:$(free_port)
fi

cat <<EOF
clear-rotator demo
  Secrets Manager (moto_server)  http://127.0.0.1:$moto_port
  Clear emulator                 $clear_url   (tokens live $TOKEN_MINUTES minutes)
  rotator ops listener           http://$ops_addr/healthz  /readyz  /metrics
  token secret                   $SECRET_ID   (checked every 10s, renewed every $((RENEW_EVERY_SECONDS / 60)) minutes)
  daily budget                   $PER_DAY requests a day of ROTATOR_DAILY_LIMIT=$DAILY_LIMIT (Clear allows 288)

Read the token as an ERP would, from another terminal:
  AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test aws --endpoint-url http://127.0.0.1:$moto_port secretsmanager get-secret-value --secret-id $SECRET_ID --version-stage AWSCURRENT

Ctrl-C stops everything. The rotator's log follows.

EOF

# The rotator runs in the background so that this shell can pass it Ctrl-C (or a SIGTERM sent to
# the script) and then wait for its graceful shutdown: a rotation in flight stores its token. A
# subshell waits for it and writes down its exit status: this shell's own wait is cut short by the
# trap below, and bash may then lose the status of a child that exits meanwhile (a clean stop then
# exited 130 or 255). The subshell, a background job, ignores SIGINT, so nothing cuts its wait short.
(
  # A clean environment, so that a developer's AWS profile or rotator settings cannot leak in.
  env -i PATH="$PATH" HOME="$HOME" TERM="${TERM:-dumb}" \
    AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port" AWS_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true \
    CLEAR_BASE_URL="$clear_url" CLEAR_CLIENT_SECRET="$CLIENT_SECRET" \
    ROTATOR_TOKEN_SECRET_ID="$SECRET_ID" ROTATOR_SCHEDULE="@every 10s" \
    ROTATOR_DAILY_LIMIT="$DAILY_LIMIT" \
    ROTATOR_HTTP_ADDR="$ops_addr" LOG_FORMAT=text \
    "$ROTATOR" run &
  echo "$!" >"$tmp/rotator.pid"
  status=0
  wait "$!" || status=$?
  echo "$status" >"$tmp/rotator.exit"
) &
runner=$!
children+=("$runner")
until [ -s "$tmp/rotator.pid" ]; do sleep 0.05; done
rotator=$(cat "$tmp/rotator.pid")
children+=("$rotator")
trap 'kill -INT "$rotator" 2>/dev/null || true' INT TERM
while kill -0 "$runner" 2>/dev/null; do
  wait "$runner" || true
done
exit "$(cat "$tmp/rotator.exit" 2>/dev/null || echo 1)"
