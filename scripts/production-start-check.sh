#!/usr/bin/env bash
# What CI runs instead of a docker build: the image's contents, installed and started the image's way.
#
#   build → copy exactly what the Dockerfile's runtime stage holds into a clean temp folder → the Dockerfile's
#   `npm ci --omit=dev --omit=optional` there → start `node dist/src/server.js` with NODE_ENV=production, development certificates from
#   certificates.example/make-dev-identity.sh, the embedded database in a temp DATA_DIR → refused at start (its WWDR
#   is not Apple's) → started again with ALLOW_INSECURE_PRODUCTION=true, as a staging server, which it logs →
#   /readyz answers 200 → the admin API creates a pass (201) and signs it (200) → SIGTERM → exit code 0.
#
# Usage: scripts/production-start-check.sh   (from anywhere; needs node, npm, openssl and curl)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

work=$(mktemp -d "${TMPDIR:-/tmp}/pks-production-check.XXXXXX")
server_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill -KILL "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "production-start-check: FAILED: $*" >&2
  if [ -f "$work/server.log" ]; then
    echo "---- server output ----" >&2
    cat "$work/server.log" >&2
    echo "-----------------------" >&2
  fi
  exit 1
}

echo "== build"
npm run build --silent

echo "== production install in a clean folder ($work/app)"
app=$work/app
mkdir -p "$app/scripts"
# The runtime stage's files (package.json, dist, prisma, models, certificates.example), plus the lockfile and
# the postinstall script that the Dockerfile's deps stage installs with; those two are removed after install.
cp package.json package-lock.json "$app/"
cp scripts/postinstall.mjs "$app/scripts/"
cp -R dist prisma models certificates.example "$app/"
(cd "$app" && npm ci --omit=dev --omit=optional --no-audit --no-fund --prefer-offline --loglevel=error)
rm -rf "$app/package-lock.json" "$app/scripts"
for dev_only in prisma typescript vitest @biomejs/biome; do
  [ ! -e "$app/node_modules/$dev_only" ] || fail "dev dependency $dev_only was installed by npm ci --omit=dev"
done

echo "== certificates"
sh certificates.example/make-dev-identity.sh "$work/certificates" >/dev/null

port=$(node -e "const s = require('node:net').createServer().listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close(); });")
token=$(openssl rand -hex 24)
base=http://127.0.0.1:$port

# A clean environment, so nothing from the caller (DATABASE_URL, MODELS_DIR, …) changes what is checked.
# The image's WORKDIR is /app, the folder of package.json; the same here.
server_env=(PATH="$PATH" HOME="$work"
  NODE_ENV=production PORT="$port" HOST=127.0.0.1 PUBLIC_URL=https://passes.example.test
  ADMIN_TOKEN="$token" DATA_DIR="$work/data" CERTIFICATES_DIR="$work/certificates" LOG_LEVEL=info)

echo "== start with the development identity: refused (its WWDR is not Apple's)"
(cd "$app" && exec env -i "${server_env[@]}" node dist/src/server.js) >"$work/server.log" 2>&1 &
server_pid=$!
started=$SECONDS
while kill -0 "$server_pid" 2>/dev/null; do
  [ $((SECONDS - started)) -lt 60 ] || fail "the server started in production with the development identity"
  sleep 0.5
done
if wait "$server_pid"; then rc=0; else rc=$?; fi
server_pid=
[ "$rc" != 0 ] || fail "the server exited 0 in production with the development identity"
grep -q "wwdr.pem is not Apple's WWDR intermediate" "$work/server.log" ||
  fail "the refusal did not name wwdr.pem"

echo "== start: node dist/src/server.js on port $port, with ALLOW_INSECURE_PRODUCTION=true (no Apple identity in CI)"
(cd "$app" && exec env -i "${server_env[@]}" ALLOW_INSECURE_PRODUCTION=true node dist/src/server.js) \
  >"$work/server.log" 2>&1 &
server_pid=$!

started=$SECONDS
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/readyz")" = 200 ]; do
  kill -0 "$server_pid" 2>/dev/null || { wait "$server_pid" && rc=0 || rc=$?; server_pid=; fail "the server exited ($rc) before /readyz answered 200"; }
  [ $((SECONDS - started)) -lt 60 ] || fail "/readyz did not answer 200 within 60 s"
  sleep 0.5
done
echo "   ready after $((SECONDS - started)) s"
grep -q '"msg":"ALLOW_INSECURE_PRODUCTION=true' "$work/server.log" || fail "the opt-out was not logged as a warning"

echo "== create and sign a pass through the admin API"
status=$(curl -s -o "$work/pass.json" -w '%{http_code}' -X POST "$base/admin/passes" \
  -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"template":"loyalty","serialNumber":"production-check-1","fields":{"points":120}}')
[ "$status" = 201 ] || fail "POST /admin/passes answered $status: $(cat "$work/pass.json")"
status=$(curl -s -o "$work/pass.pkpass" -w '%{http_code}' \
  "$base/admin/passes/pass.dev.passkit-server/production-check-1/pkpass" -H "Authorization: Bearer $token")
[ "$status" = 200 ] || fail "GET …/pkpass answered $status"
[ "$(head -c 2 "$work/pass.pkpass")" = PK ] || fail "GET …/pkpass did not answer a zip archive"

echo "== SIGTERM"
kill -TERM "$server_pid"
if wait "$server_pid"; then rc=0; else rc=$?; fi
server_pid=
[ "$rc" = 0 ] || fail "the server exited with $rc after SIGTERM (expected 0)"

echo "production-start-check: OK (build, npm ci --omit=dev, development identity refused in production, staging start, ready, pass created, clean exit)"
