#!/usr/bin/env bash
# Instruction counts per request on the hot paths, under valgrind's callgrind (repeatable:
# it counts instructions, not seconds, so the other core's load does not matter).
#   bench/profile.sh [requests]        # default 2000 per scenario
# Starts the release binary under callgrind on a fresh SQLite database, creates one
# collection, one oauth2 profile and one token profile, warms every cache, then for each
# scenario zeroes the counters, sends exactly N requests on one keep-alive connection and
# dumps. Prints instructions per request and writes the dumps and the top functions
# (callgrind_annotate, inclusive) to $OUT (default bench/results/profile-<date>).
# Needs valgrind, curl, jq and python3.
set -euo pipefail
N=${1:-2000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/target/release/gatehouse"
[ -x "$BIN" ] || cargo build --release -p gatehouse-server --manifest-path "$ROOT/Cargo.toml"
OUT=${OUT:-$ROOT/bench/results/profile-$(date -u +%Y-%m-%d)}
mkdir -p "$OUT"
DIR=$(mktemp -d)
PUB=127.0.0.1:18180
ADM=127.0.0.1:18181
ADMIN_ID=gco_profileadmin
ADMIN_SECRET=profile-admin-secret-0123456789abcdef
GATEHOUSE_DATABASE_URL="sqlite://$DIR/gh.db?mode=rwc" GATEHOUSE_PUBLIC_ADDR=$PUB GATEHOUSE_ADMIN_ADDR=$ADM \
GATEHOUSE_LOG=warn GATEHOUSE_BOOTSTRAP_CLIENT_ID=$ADMIN_ID GATEHOUSE_BOOTSTRAP_CLIENT_SECRET=$ADMIN_SECRET \
  valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.%p" --dump-instr=no \
  "$BIN" > "$DIR/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 1 300); do curl -fs "http://$PUB/readyz" >/dev/null && break; sleep 0.5; done

AT=$(curl -fs -u "$ADMIN_ID:$ADMIN_SECRET" -d grant_type=client_credentials "http://$PUB/oauth/token" | jq -r .access_token)
H=(-H "Authorization: Bearer $AT" -H 'Content-Type: application/json')
COLJ=$(curl -fs "${H[@]}" -d '{"name":"Orders","audience":"https://api.example.com/orders","scopes":[{"name":"orders:read"}]}' "http://$ADM/admin/v1/collections")
COL=$(echo "$COLJ" | jq -r .id)
RS_ID=$(echo "$COLJ" | jq -r .introspection_client_id)
RS_SECRET=$(echo "$COLJ" | jq -r .introspection_client_secret)
CLI=$(curl -fs "${H[@]}" -d '{"name":"ACME"}' "http://$ADM/admin/v1/clients" | jq -r .id)
PRF=$(curl -fs "${H[@]}" -d "{\"name\":\"p\",\"collections\":[\"$COL\"],\"auth_type\":\"oauth2\"}" "http://$ADM/admin/v1/clients/$CLI/access-profiles")
ID=$(echo "$PRF" | jq -r .oauth_client_id)
SECRET=$(echo "$PRF" | jq -r .oauth_client_secret)
KEY=$(curl -fs "${H[@]}" -d "{\"name\":\"k\",\"collections\":[\"$COL\"],\"auth_type\":\"token\"}" "http://$ADM/admin/v1/clients/$CLI/access-profiles" | jq -r .auth_token)
TOKEN=$(curl -fs -u "$ID:$SECRET" -d grant_type=client_credentials "http://$PUB/oauth/token" | jq -r .access_token)

ID="$ID" SECRET="$SECRET" RS_ID="$RS_ID" RS_SECRET="$RS_SECRET" TOKEN="$TOKEN" KEY="$KEY" \
PUB="$PUB" N="$N" PID="$SERVER" OUT="$OUT" python3 - <<'PY'
import base64, glob, http.client, os, subprocess, urllib.parse
env = os.environ
n = int(env["N"])
host, port = env["PUB"].split(":")
def basic(u, p):
    return "Basic " + base64.b64encode(f"{urllib.parse.quote(u, safe='')}:{urllib.parse.quote(p, safe='')}".encode()).decode()
scenarios = {
    "token": ("POST", "/oauth/token", basic(env["ID"], env["SECRET"]), "grant_type=client_credentials"),
    "introspect-jwt": ("POST", "/oauth/introspect", basic(env["RS_ID"], env["RS_SECRET"]), "token=" + env["TOKEN"]),
    "introspect-key": ("POST", "/oauth/introspect", basic(env["RS_ID"], env["RS_SECRET"]), "token=" + env["KEY"]),
    "jwks": ("GET", "/oauth/jwks", None, None),
}
def ctl(*args):
    subprocess.run(["callgrind_control", *args, env["PID"]], check=True, stdout=subprocess.DEVNULL)
conn = http.client.HTTPConnection(host, int(port), timeout=120)
def send(method, path, auth, body):
    headers = {}
    if auth:
        headers["Authorization"] = auth
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    if r.status != 200 or (b'"active":false' in data):
        raise SystemExit(f"{path}: {r.status} {data[:200]!r}")
for name, (method, path, auth, body) in scenarios.items():
    for _ in range(50):
        send(method, path, auth, body)  # warm caches and the connection
    ctl("-z")
    for _ in range(n):
        send(method, path, auth, body)
    ctl("-d", name)
    newest = max(glob.glob(os.path.join(env["OUT"], f"callgrind.{env['PID']}.*[0-9]")), key=os.path.getmtime)
    os.rename(newest, os.path.join(env["OUT"], f"callgrind.{name}"))
    total = 0
    with open(os.path.join(env["OUT"], f"callgrind.{name}")) as f:
        for line in f:
            if line.startswith(("totals:", "summary:")):
                total = max(total, int(line.split()[1]))
    print(f"{name}: {total / n:,.0f} instructions per request ({n} requests)", flush=True)
PY
kill -TERM $SERVER; wait $SERVER 2>/dev/null || true
rm -f "$OUT"/callgrind.[0-9]*
for f in "$OUT"/callgrind.{token,introspect-jwt,introspect-key,jwks}; do
  callgrind_annotate --inclusive=yes "$f" 2>/dev/null | head -60 > "$f.top.txt" || true
done
echo "dumps and top functions in $OUT"
