#!/usr/bin/env bash
# Installs what building and testing rocketmq-swift needs on a fresh Debian 12 machine
# (the Swift 6 toolchain itself is expected on PATH). Idempotent: installs only what is missing.
#
#   Scripts/install-deps.sh            build + run dependencies
#   Scripts/install-deps.sh --test     also the test peers (nghttp2 tools, etcd, Python venv with grpcio)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

packages=(
  pkg-config libprotobuf-c-dev libnghttp2-dev        # the wire: protobuf-c and nghttp2
  libjemalloc-dev                                     # the allocator of the server executables
  protobuf-compiler libprotobuf-dev libprotoc-dev     # protoc + well-known types for the codegen plugin
  protobuf-c-compiler                                 # protoc-c, for Scripts/gen-protos.sh --check
  python3                                             # Scripts/lib helpers
)
if [ "${1:-}" = "--test" ]; then
  packages+=(nghttp2-client nghttp2-server python3-venv etcd-server)  # etcd: failover tests
fi

missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "${1:-}" = "--test" ]; then
  venv=$root/.venv
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/Tests/Interop/requirements.txt"
fi
