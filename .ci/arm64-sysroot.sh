#!/usr/bin/env bash
# Installs qemu-user-static (if missing) and unpacks an arm64 Debian sysroot for `qemu-aarch64-static -L SYSROOT`
# into $1 (default .tools/arm64-sysroot). Uses a private apt configuration (its own lists, cache and status), so the
# host's dpkg architecture list is left alone. Idempotent: a finished sysroot is reused.
set -euo pipefail
root=$(realpath -m "${1:-.tools/arm64-sysroot}")
if ! command -v qemu-aarch64-static >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static) >/dev/null
fi
[ -f "$root/.complete" ] && exit 0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/archives/partial" "$work/etc/sources.list.d" "$work/etc/preferences.d" "$work/etc/apt.conf.d"
touch "$work/status"
# Same Debian sources as the host (deb822 or one-line format), arm64 only.
for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list; do
  [ -f "$f" ] && cp "$f" "$work/etc/sources.list.d/" || true
done
opts=(-o APT::Architecture=arm64 -o "APT::Architectures::=arm64"
      -o Dir::Etc="$work/etc" -o Dir::Etc::sourcelist="$work/etc/sources.list.d/none"
      -o Dir::Etc::sourceparts="$work/etc/sources.list.d" -o Dir::Etc::parts="$work/etc/apt.conf.d"
      -o Dir::Etc::preferencesparts="$work/etc/preferences.d"
      -o Dir::State::Lists="$work/lists" -o Dir::State::status="$work/status" -o Dir::Cache="$work"
      -o Debug::NoLocking=1)
apt-get "${opts[@]}" update -qq
mkdir -p "$root"
(cd "$work/archives" && apt-get "${opts[@]}" download libc6 libstdc++6 libgcc-s1 libicu72 zlib1g libssl3 >/dev/null)
for deb in "$work"/archives/*.deb; do dpkg-deb -x "$deb" "$root"; done
touch "$root/.complete"
echo "arm64 sysroot ready in $root"
