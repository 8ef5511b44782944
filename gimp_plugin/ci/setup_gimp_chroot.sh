#!/usr/bin/env bash
# Build (idempotently) a Debian chroot with GIMP 3 and Python, for the plug-in's end-to-end test.
#   setup_gimp_chroot.sh CHROOT [SUITE]     SUITE: trixie (GIMP 3.0, default) or sid (GIMP 3.2)
# EXTRA_PACKAGES="xvfb xauth" adds what the dialog check needs (about 15 s and 200 MB more).
# Needs root (debootstrap, mount, chroot). From nothing: about a minute and 120 MB of downloads for trixie.
set -euo pipefail
CHROOT=${1:?usage: setup_gimp_chroot.sh CHROOT [trixie|sid]}
SUITE=${2:-trixie}
# sid on the mirror may be a frozen snapshot whose Release file has expired.
APT_OPTS=(-q -o Acquire::Check-Valid-Until=false)

# The host's own mirror: CI machines and proxies only reach that one.
MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}

PACKAGES=(gimp python3 ${EXTRA_PACKAGES:-})
if chroot "$CHROOT" dpkg -s "${PACKAGES[@]}" >/dev/null 2>&1; then
    exit 0   # already built
fi

command -v debootstrap >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends debootstrap; }
if [ -d "$CHROOT/debootstrap" ]; then  # an interrupted debootstrap leaves this folder: start over
    for m in dev/pts dev proc; do mountpoint -q "$CHROOT/$m" && umount -l "$CHROOT/$m"; done
    rm -rf --one-file-system "$CHROOT"   # --one-file-system: never into a still bind-mounted /dev
fi
if [ ! -x "$CHROOT/usr/bin/apt-get" ]; then
    mkdir -p "$CHROOT"
    debootstrap --variant=minbase "$SUITE" "$CHROOT" "$MIRROR"
fi

cleanup() {
    for m in dev/pts dev proc; do
        mountpoint -q "$CHROOT/$m" && { umount "$CHROOT/$m" || umount -l "$CHROOT/$m"; }
    done
    return 0
}
trap cleanup EXIT
mountpoint -q "$CHROOT/proc" || mount -t proc proc "$CHROOT/proc"
mountpoint -q "$CHROOT/dev" || mount --bind /dev "$CHROOT/dev"
mountpoint -q "$CHROOT/dev/pts" || mount --bind /dev/pts "$CHROOT/dev/pts"
cp /etc/resolv.conf "$CHROOT/etc/resolv.conf"

chroot "$CHROOT" apt-get "${APT_OPTS[@]}" update
chroot "$CHROOT" env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install -y --no-install-recommends "${PACKAGES[@]}"
chroot "$CHROOT" apt-get clean
chroot "$CHROOT" gimp-console --version
