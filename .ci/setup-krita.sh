#!/usr/bin/env bash
# Installs what tests/test_krita_e2e.py needs on a fresh Debian 12 machine (run as root): Krita 5 with its
# embedded Python and PyQt5, and a virtual X server, since Krita's GUI needs a display. Idempotent and quiet.
set -euo pipefail

packages=(krita python3-pyqt5 python3-sip xvfb xauth)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # --no-install-recommends: Krita's recommends pull in hundreds of MB the tests never use.
    apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi
dpkg-query -W -f='krita ${Version} ready for the Krita end-to-end test\n' krita
