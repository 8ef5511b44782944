#!/usr/bin/env bash
# Installs what tests/test_krita_e2e.py needs on a fresh Debian 12 machine (run as root): Krita 5 with its
# embedded Python and PyQt5, a virtual X server (Krita's GUI needs a display), and python3-venv (a test starts
# Krita from an activated venv). Idempotent and quiet.
# Then Krita 5.2 (Debian trixie) in the trixie chroot of .ci/setup-gimp.sh (built here if missing), so the same
# tests also run in the current Krita; INPAINT_KRITA52=0 skips that part (the 5.2 tests then skip).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(krita python3-pyqt5 python3-sip python3-venv xvfb xauth)
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

[ "${INPAINT_KRITA52:-1}" != 0 ] || exit 0
TRIXIE=${INPAINT_GIMP_CHROOT:-/var/cache/inpaint-ci/trixie}
mkdir -p "$TRIXIE"
# The lock every run in the chroot holds (gimp3-batch.sh, tests/krita/harness.py): never install under a run.
exec 9>"$TRIXIE/.gimp3-batch.lock"
flock 9
LOG=$(mktemp)
# The chroot's GIMP packages stay; Krita, its PyQt5 and Xvfb join them (about 270 MB, once; trixie has no python3-sip).
if ! EXTRA_PACKAGES="xvfb xauth krita python3-pyqt5" bash gimp_plugin/ci/setup_gimp_chroot.sh "$TRIXIE" trixie >"$LOG" 2>&1; then
    echo "setup-krita: installing Krita 5.2 into $TRIXIE failed (tail of its log):" >&2
    tail -20 "$LOG" >&2
    exit 1
fi
rm -f "$LOG"
chroot "$TRIXIE" dpkg-query -W -f='krita ${Version} ready in '"$TRIXIE"' for the Krita end-to-end test\n' krita
