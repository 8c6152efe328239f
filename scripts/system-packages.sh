#!/usr/bin/env bash
# The Debian packages the test suite needs beyond Python: Chromium for the end-to-end tests (tests/e2e),
# which Playwright drives through executable_path=/usr/bin/chromium (no browser download), and a font for
# its screenshots. scripts/test.sh runs this before pytest (so .ci/run does too).
#
# Idempotent and cheap: one dpkg-query when everything is installed. Otherwise installs what is missing
# as root, or with sudo (without a password, or at a terminal); else it stops at once and prints the one
# command to run. SYSTEM_PACKAGES="a b" replaces the list (tests use it); CDATA_SKIP_SYSTEM_PACKAGES=1
# skips this step (a machine without apt, with Chromium elsewhere: set CDATA_E2E_CHROMIUM to its path).
set -euo pipefail
read -r -a PACKAGES <<< "${SYSTEM_PACKAGES:-chromium fonts-dejavu-core}"

if [[ "${CDATA_SKIP_SYSTEM_PACKAGES:-}" == "1" ]]; then
  echo "system packages: skipped (CDATA_SKIP_SYSTEM_PACKAGES=1); the suite needs: ${PACKAGES[*]}"
  exit 0
fi
if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
  echo "system packages: no apt here. Install ${PACKAGES[*]} (or their equivalents) yourself, set" \
    "CDATA_E2E_CHROMIUM to the Chromium binary, and run again with CDATA_SKIP_SYSTEM_PACKAGES=1." >&2
  exit 1
fi

missing=()
for package in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
  [[ "$status" == "installed" ]] || missing+=("$package")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "system packages: ${PACKAGES[*]} already installed"
  exit 0
fi

install=(apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}")
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null && { sudo -n true 2>/dev/null || [[ -t 0 ]]; }; then
    sudo=(sudo)
  else
    echo "system packages: ${missing[*]} missing, and installing needs root. Run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
fi
echo "system packages: installing ${missing[*]} ..."
started=$SECONDS
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 update -qq
"${sudo[@]}" "${install[@]}" >/dev/null
echo "system packages: installed ${missing[*]} in $((SECONDS - started)) s"
