#!/bin/sh
# signal-client pipeline self-test (the chart's `helm test` hook).
#
# Passes when, in every shard, an entry appended after the test started (the
# leader ingester appends a heartbeat to every shard every HEARTBEAT_INTERVAL)
# has been delivered to the consumer group and acknowledged by a worker. It only
# reads Redis. Needs sh, sha256sum and redis-cli; settings come from the same
# environment as the binaries (REDIS_URL, REDIS_*_FILE, SIGNAL_PHONE_NUMBER,
# REDIS_KEY_PREFIX, WORKER_SHARD_COUNT).
set -u

timeout=${SELFTEST_TIMEOUT:-90}
prefix=${REDIS_KEY_PREFIX:-sc}
shards=${WORKER_SHARD_COUNT:-64}
: "${SIGNAL_PHONE_NUMBER:?selftest: SIGNAL_PHONE_NUMBER is not set}"
: "${REDIS_URL:?selftest: REDIS_URL is not set}"

if [ -n "${REDIS_PASSWORD_FILE:-}" ]; then
  REDISCLI_AUTH=$(cat "$REDIS_PASSWORD_FILE") || exit 2
  export REDISCLI_AUTH
elif [ -n "${REDIS_PASSWORD:-}" ]; then
  REDISCLI_AUTH=$REDIS_PASSWORD
  export REDISCLI_AUTH
fi
set -- -u "$REDIS_URL" --no-auth-warning
[ -n "${REDIS_USERNAME:-}" ] && set -- "$@" --user "$REDIS_USERNAME"
case "$REDIS_URL" in rediss://*) set -- "$@" --tls ;; esac
[ -n "${REDIS_TLS_CA_FILE:-}" ] && set -- "$@" --cacert "$REDIS_TLS_CA_FILE"
[ -n "${REDIS_TLS_CERT_FILE:-}" ] && set -- "$@" --cert "$REDIS_TLS_CERT_FILE" --key "$REDIS_TLS_KEY_FILE"
[ -n "${REDIS_TLS_SERVER_NAME:-}" ] && set -- "$@" --sni "$REDIS_TLS_SERVER_NAME"
[ "${REDIS_TLS_INSECURE_SKIP_VERIFY:-false}" = "true" ] && set -- "$@" --insecure

# The account part of every key: the first 12 hex digits of SHA-256 of the number.
acct=$(printf '%s' "$SIGNAL_PHONE_NUMBER" | sha256sum | cut -c1-12)

now=$(redis-cli "$@" TIME) || { echo "selftest: FAIL: Redis unreachable at the configured REDIS_URL"; exit 1; }
start=$(printf '%s\n' "$now" | awk 'NR==1{s=$1} NR==2{printf "%d", s*1000 + int($1/1000)}')

# id_ge A B: stream id A >= B.
id_ge() {
  a_ms=${1%-*} a_seq=${1#*-} b_ms=${2%-*} b_seq=${2#*-}
  [ "$a_ms" -gt "$b_ms" ] || { [ "$a_ms" -eq "$b_ms" ] && [ "$a_seq" -ge "$b_seq" ]; }
}

# check N prints nothing when shard N passed, else why it has not.
check() {
  key="$prefix:{$acct.s$1}:in"
  shift
  id=$(redis-cli "$@" XRANGE "$key" "$start" + COUNT 1 2>/dev/null | head -n 1)
  if [ -z "$id" ]; then echo "nothing appended since the test started (is an ingester leader running?)"; return; fi
  delivered=$(redis-cli "$@" XINFO GROUPS "$key" 2>/dev/null | awk 'p{print; exit} $0=="last-delivered-id"{p=1}')
  if [ -z "$delivered" ] || ! id_ge "$delivered" "$id"; then echo "appended but not delivered (is a worker running and owning the shard?)"; return; fi
  pending=$(redis-cli "$@" XPENDING "$key" workers "$id" "$id" 1 2>/dev/null | head -n 1)
  if [ -n "$pending" ]; then echo "delivered but not acknowledged yet"; return; fi
}

deadline=$(( $(date +%s) + timeout ))
left=$(seq 0 $((shards - 1)))
while :; do
  still="" why_first=""
  for n in $left; do
    why=$(check "$n" "$@")
    if [ -n "$why" ]; then
      still="$still $n"
      [ -z "$why_first" ] && why_first="shard $n: $why"
    fi
  done
  left=$still
  if [ -z "$left" ]; then
    echo "selftest: ok: a heartbeat was appended, handled and acknowledged in all $shards shards"
    exit 0
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    count=$(echo $left | wc -w | tr -d " ")
    echo "selftest: FAIL after ${timeout}s: $count of $shards shards not through the pipeline (shards:$left); $why_first"
    exit 1
  fi
  sleep 1
done
