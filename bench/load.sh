#!/usr/bin/env bash
# Load run against the release binary on loopback (bounded in time), as reported in the
# README. Needs wrk (apt-get install wrk) and curl + jq.
#   bench/load.sh [connections] [seconds] [alg]
#   POLICY=1 bench/load.sh ...   # the same with a policy (rate limit + quota) on both profiles
# Starts its own server on a fresh SQLite database in a temp dir, creates one collection,
# client, oauth2 profile and token profile, then drives the token endpoint, introspection
# (a JWT and an API key) and the JWKS.
set -euo pipefail
CONNS=${1:-32}
SECS=${2:-20}
ALG=${3:-ES256}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/target/release/gatehouse"
[ -x "$BIN" ] || cargo build --release -p gatehouse-server --manifest-path "$ROOT/Cargo.toml"
command -v wrk >/dev/null || { echo "install wrk: apt-get install wrk" >&2; exit 1; }

DIR=$(mktemp -d)
PUB=127.0.0.1:18080
ADM=127.0.0.1:18081
ADMIN_ID=gco_benchadmin
ADMIN_SECRET=bench-admin-secret-0123456789abcdef
GATEHOUSE_DATABASE_URL="sqlite://$DIR/gh.db?mode=rwc" GATEHOUSE_PUBLIC_ADDR=$PUB GATEHOUSE_ADMIN_ADDR=$ADM \
GATEHOUSE_SIGNING_ALG=$ALG GATEHOUSE_LOG=warn \
GATEHOUSE_BOOTSTRAP_CLIENT_ID=$ADMIN_ID GATEHOUSE_BOOTSTRAP_CLIENT_SECRET=$ADMIN_SECRET \
  "$BIN" > "$DIR/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 1 50); do curl -fs "http://$PUB/readyz" >/dev/null && break; sleep 0.2; done

AT=$(curl -fs -u "$ADMIN_ID:$ADMIN_SECRET" -d grant_type=client_credentials "http://$PUB/oauth/token" | jq -r .access_token)
H=(-H "Authorization: Bearer $AT" -H 'Content-Type: application/json')
COLJ=$(curl -fs "${H[@]}" -d '{"name":"Orders","audience":"https://api.example.com/orders","scopes":[{"name":"orders:read"}]}' "http://$ADM/admin/v1/collections")
COL=$(echo "$COLJ" | jq -r .id)
RS_ID=$(echo "$COLJ" | jq -r .introspection_client_id)
RS_SECRET=$(echo "$COLJ" | jq -r .introspection_client_secret)
CLI=$(curl -fs "${H[@]}" -d '{"name":"ACME"}' "http://$ADM/admin/v1/clients" | jq -r .id)
POLICY_FIELD=""
if [ -n "${POLICY:-}" ]; then
  # Limits far above what the run reaches, so every request is counted and none refused.
  POL=$(curl -fs "${H[@]}" -d '{"name":"bench","rate_limit":{"requests":1000000,"per":"second"},"quota":{"requests":1000000000000,"per":"month"}}' "http://$ADM/admin/v1/policies" | jq -r .id)
  POLICY_FIELD=",\"policy_id\":\"$POL\""
  echo "== with policy $POL on both profiles"
fi
PRF=$(curl -fs "${H[@]}" -d "{\"name\":\"bench\",\"collections\":[\"$COL\"],\"auth_type\":\"oauth2\"$POLICY_FIELD}" "http://$ADM/admin/v1/clients/$CLI/access-profiles")
ID=$(echo "$PRF" | jq -r .oauth_client_id)
SECRET=$(echo "$PRF" | jq -r .oauth_client_secret)
# Warm the verified-secret cache (one argon2id run).
curl -fs -u "$ID:$SECRET" -d grant_type=client_credentials "http://$PUB/oauth/token" >/dev/null

echo "== POST /oauth/token ($ALG), $CONNS connections, ${SECS}s"
wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s "$ROOT/bench/token.lua" "http://$PUB/oauth/token" -- "$ID" "$SECRET"
TOKEN=$(curl -fs -u "$ID:$SECRET" -d grant_type=client_credentials "http://$PUB/oauth/token" | jq -r .access_token)
KEY=$(curl -fs "${H[@]}" -d "{\"name\":\"bench-key\",\"collections\":[\"$COL\"],\"auth_type\":\"token\"$POLICY_FIELD}" "http://$ADM/admin/v1/clients/$CLI/access-profiles" | jq -r .auth_token)
# Warm the resource server's verified-secret cache and the verified-token cache.
curl -fs -u "$RS_ID:$RS_SECRET" -d "token=$TOKEN" "http://$PUB/oauth/introspect" | jq -e .active >/dev/null
curl -fs -u "$RS_ID:$RS_SECRET" -d "token=$KEY" "http://$PUB/oauth/introspect" | jq -e .active >/dev/null
echo "== POST /oauth/introspect (our $ALG JWT), $CONNS connections, ${SECS}s"
wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s "$ROOT/bench/introspect.lua" "http://$PUB/oauth/introspect" -- "$RS_ID" "$RS_SECRET" "$TOKEN"
echo "== POST /oauth/introspect (API key), $CONNS connections, ${SECS}s"
wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s "$ROOT/bench/introspect.lua" "http://$PUB/oauth/introspect" -- "$RS_ID" "$RS_SECRET" "$KEY"
echo "== GET /oauth/jwks, $CONNS connections, ${SECS}s"
wrk -t2 -c"$CONNS" -d"${SECS}s" --latency "http://$PUB/oauth/jwks"
echo "== server peak RSS: $(grep VmHWM /proc/$SERVER/status | awk '{print $2, $3}')"
