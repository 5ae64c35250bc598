#!/usr/bin/env bash
# Installs what sluice needs to build and test, on Debian 12. Fast when
# everything is present: one dpkg-query call, no network.
set -euo pipefail

packages=(
  build-essential cmake pkg-config clang clang-format
  libsqlite3-dev sqlite3 libssl-dev libsodium-dev libjansson-dev libcmocka-dev
  libmicrohttpd-dev libcurl4-openssl-dev curl redis-server nodejs
  jq libpq-dev postgresql mariadb-server libmariadb-dev rclone groff-base libhiredis-dev
  librdkafka-dev
)

missing=()
while read -r name status; do
  [ "$status" = "installed" ] || missing+=("$name")
done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${packages[@]}" 2>/dev/null || true)
# dpkg-query prints nothing for packages it has never heard of.
for p in "${packages[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -q '^installed$' || \
    [[ " ${missing[*]-} " == *" $p "* ]] || missing+=("$p")
done

# The tests' npm packages are pinned in tests/package.json: the S3-compatible
# test server (s3rver) and nostr-tools, the NIP-77 implementation that
# tests/cli/reconcile_interop.sh checks set reconciliation against.
install_test_servers() {
  local tests
  tests="$(cd "$(dirname "$0")/../tests" && pwd)"
  if [ ! -x "$tests/node_modules/.bin/s3rver" ] ||
     [ ! -f "$tests/node_modules/nostr-tools/package.json" ]; then
    echo "deps: npm ci in tests/" >&2
    (cd "$tests" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
}

if [ ${#missing[@]} -eq 0 ]; then
  install_test_servers
  exit 0
fi

echo "deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
install_test_servers
