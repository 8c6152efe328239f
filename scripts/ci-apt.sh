#!/usr/bin/env bash
# Debian packages the test suite needs beyond Python: Chromium for the end-to-end tests (tests/e2e), which
# Playwright drives through executable_path=/usr/bin/chromium (no browser download), and a font for its
# screenshots. Idempotent: does nothing when they are installed. Needs root (or sudo). .ci/run calls it.
set -euo pipefail
PACKAGES=(chromium fonts-dejavu-core)

installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

missing=()
for package in "${PACKAGES[@]}"; do
  installed "$package" || missing+=("$package")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "apt: ${PACKAGES[*]} already installed"
  exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "apt: run as root to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
echo "apt: installing ${missing[*]} ..."
started=$SECONDS
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 update -qq
"${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "apt: installed ${missing[*]} in $((SECONDS - started)) s ($(/usr/bin/chromium --version 2>/dev/null))"
