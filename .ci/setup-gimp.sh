#!/usr/bin/env bash
# GIMP 3 for the plug-in's end-to-end test (tests/test_gimp_e2e.py): Debian chroots, built once, quietly.
#   trixie -> GIMP 3.0 and Xvfb (required) at ${INPAINT_GIMP_CHROOT:-/var/cache/inpaint-ci/trixie}
#   sid    -> GIMP 3.2 (best effort) at ${INPAINT_GIMP32_CHROOT:-/var/cache/inpaint-ci/sid}; INPAINT_GIMP32=0 skips it
# Needs root (debootstrap, mount, chroot). Both builds run in parallel: about 4 minutes from nothing on
# 2 busy cores (trixie alone: about 2), seconds when already built.
set -euo pipefail
cd "$(dirname "$0")/.."
TRIXIE=${INPAINT_GIMP_CHROOT:-/var/cache/inpaint-ci/trixie}
SID=${INPAINT_GIMP32_CHROOT:-/var/cache/inpaint-ci/sid}
BUILD=gimp_plugin/ci/setup_gimp_chroot.sh
LOGS=$(mktemp -d)
mkdir -p "$(dirname "$TRIXIE")" "$(dirname "$SID")"

# Host tools first, so the two builds below do not race for the dpkg lock.
if ! command -v debootstrap >/dev/null; then
    apt-get update -qq >"$LOGS/host.log" 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >>"$LOGS/host.log" 2>&1 ||
        { cat "$LOGS/host.log"; exit 1; }
fi

start=$SECONDS
EXTRA_PACKAGES="xvfb xauth" bash "$BUILD" "$TRIXIE" trixie >"$LOGS/trixie.log" 2>&1 & trixie_pid=$!  # + the dialog check
sid_pid=""
if [ "${INPAINT_GIMP32:-1}" != 0 ]; then
    bash "$BUILD" "$SID" sid >"$LOGS/sid.log" 2>&1 & sid_pid=$!
fi

if ! wait "$trixie_pid"; then
    echo "setup-gimp: building the GIMP 3.0 chroot in $TRIXIE failed:" >&2
    tail -30 "$LOGS/trixie.log" >&2
    [ -z "$sid_pid" ] || wait "$sid_pid" || true
    exit 1
fi
echo "setup-gimp: $(chroot "$TRIXIE" gimp-console --version) in $TRIXIE ($((SECONDS - start)) s)"
if [ -n "$sid_pid" ]; then
    if wait "$sid_pid"; then
        echo "setup-gimp: $(chroot "$SID" gimp-console --version) in $SID ($((SECONDS - start)) s)"
    else  # sid moves daily; a broken day must not block CI, the 3.2 test then skips
        echo "setup-gimp: warning: the optional GIMP 3.2 chroot failed to build (tail of its log):" >&2
        tail -10 "$LOGS/sid.log" >&2
    fi
fi
echo "setup-gimp: done in $((SECONDS - start)) s"
rm -rf "$LOGS"
