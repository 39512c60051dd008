#!/usr/bin/env bash
# Installs Debian's Chromium for the browser test of the HTML report
# (tests/python/test_report_html.py drives it headless through Playwright), unless it is
# already there. Prints the browser's path on its last line.
set -euo pipefail

find_chromium() {
  command -v chromium 2>/dev/null || { [[ -x /usr/bin/chromium ]] && echo /usr/bin/chromium; } || true
}

path="$(find_chromium)"
if [[ -z "$path" ]]; then
  if [[ $(id -u) -ne 0 ]] && ! command -v sudo >/dev/null; then
    echo "setup-browser: chromium is missing and this user cannot install it (apt-get install chromium)" >&2
    exit 1
  fi
  as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
  echo "installing chromium (Debian package)" >&2
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >&2; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >&2
  fi
  path="$(find_chromium)"
fi
if [[ -z "$path" ]]; then
  echo "setup-browser: chromium is not installed after apt-get install" >&2
  exit 1
fi
echo "$path"
