#!/usr/bin/env bash
# Install mod_wasmpy system-wide on Debian (run as root), or into DESTDIR:
#   /usr/lib/apache2/modules/mod_wasmpy.so
#   /usr/share/wasmpy/runtime/{gateway.wasm,python/}
#   /usr/bin/wasmpy
#   /etc/apache2/mods-available/wasmpy.{load,conf}   (then: a2enmod wasmpy)
#   /var/cache/apache2/wasmpy                          (owned by www-data)
# Builds in release mode unless PROFILE=debug; SKIP_BUILD=1 installs what
# is already built (the tests use it).
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
dest="${DESTDIR:-}"
profile="${PROFILE:-release}"
out=target/debug
[ "$profile" = release ] && out=target/release
if [ -z "${SKIP_BUILD:-}" ]; then
  scripts/setup.sh
  if [ "$profile" = release ]; then
    cargo build --release -p mod_wasmpy -p wasmpy
  else
    cargo build -p mod_wasmpy -p wasmpy
  fi
fi
install -D -m 0644 "$out/libmod_wasmpy.so" "$dest/usr/lib/apache2/modules/mod_wasmpy.so"
install -D -m 0755 "$out/wasmpy" "$dest/usr/bin/wasmpy"
rm -rf "$dest/usr/share/wasmpy/runtime"
mkdir -p "$dest/usr/share/wasmpy/runtime"
cp -r build/runtime/gateway.wasm build/runtime/python "$dest/usr/share/wasmpy/runtime/"
install -D -m 0644 apache-module/conf/wasmpy.load "$dest/etc/apache2/mods-available/wasmpy.load"
install -D -m 0644 apache-module/conf/wasmpy.conf "$dest/etc/apache2/mods-available/wasmpy.conf"
install -d -m 0755 "$dest/var/cache/apache2/wasmpy"
if [ -z "$dest" ] && id www-data >/dev/null 2>&1; then
  chown www-data:www-data /var/cache/apache2/wasmpy
fi
echo "installed mod_wasmpy${dest:+ into $dest}; enable it with: a2enmod wasmpy && systemctl reload apache2"
