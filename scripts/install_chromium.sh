#!/bin/sh
# Debian's Chromium for the dashboard's browser tests (Playwright drives it;
# Playwright's own browser download is not used). `make test` runs this; it
# does nothing when /usr/bin/chromium is already there.
set -e
[ -x /usr/bin/chromium ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "install_chromium: /usr/bin/chromium is missing; run as root: apt-get install -y chromium" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium
