#!/usr/bin/env bash
# Make a headless Chromium and its WebDriver available for tests/verify/test_dashboard_browser.py.
#
# Installs Debian's `chromium` and `chromium-driver` with apt-get when they are missing and we are root
# (`apt-get update` first), quietly. Never fails the build: when it cannot install them (not root, no apt,
# no network) it says so in one line and the browser test skips with a clear message.
# Takes about a minute on a fresh Debian 12 machine (download of ~100 MB of packages).
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: chromium/chromedriver missing and cannot install them (needs root and apt-get);" \
         "the browser tests will skip" >&2
    exit 0
fi
echo "ensure_chromium: installing chromium and chromium-driver with apt-get ..." >&2
start=$(date +%s)
if DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 &&
   DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
       chromium chromium-driver >/dev/null 2>&1; then
    echo "ensure_chromium: installed in $(( $(date +%s) - start )) s" >&2
else
    echo "ensure_chromium: apt-get could not install chromium; the browser tests will skip" >&2
fi
exit 0
