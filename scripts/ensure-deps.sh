#!/usr/bin/env bash
# Makes a fresh clone runnable: npm dependencies, and ffmpeg from Debian's packages.
# Used by `npm start`, `npm test` and the benchmarks; safe to run again (it does nothing when all is there).
set -euo pipefail
cd "$(dirname "$0")/.."

# npm dependencies: install when missing or when package-lock.json changed since the last install.
stamp=node_modules/.peertv-lock-hash
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -d node_modules ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "peertv: installing npm dependencies (npm ci)…" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
  echo "$want" > "$stamp"
fi

need_pkgs=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || need_pkgs+=(ffmpeg fonts-dejavu-core)
for pkg in "$@"; do
  case "$pkg" in
    --chromium) command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium) ;;
    # The NAT lab and the STUN benchmark: coturn (TURN server and its STUN clients), iptables, iproute2.
    --natlab)
      command -v turnserver >/dev/null 2>&1 || need_pkgs+=(coturn)
      command -v iptables >/dev/null 2>&1 || need_pkgs+=(iptables)
      command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
      ;;
  esac
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "peertv: installing Debian packages: ${need_pkgs[*]}…" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2
  else
    echo "peertv: missing ${need_pkgs[*]}: install Debian's package(s) \"${need_pkgs[*]}\" (sudo apt-get install ${need_pkgs[*]})" >&2
    exit 1
  fi
fi
