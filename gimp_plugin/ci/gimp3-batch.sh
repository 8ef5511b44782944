#!/usr/bin/env bash
# Run a Python driver inside headless GIMP 3 in a chroot, with the project's plug-in folder on GIMP's plug-in path.
#   gimp3-batch.sh CHROOT PROJECT_DIR PLUGIN_DIR DRIVER [VAR=VALUE ...]
# PLUGIN_DIR and DRIVER are relative to PROJECT_DIR, which is bind-mounted read-only at /project.
# VAR=VALUE pairs reach the driver (and the plug-in) as environment variables.
# Env: GIMP3_HOME  in-chroot HOME kept between runs (a warm profile starts in about 3 s instead of 10);
#                  unset: a throw-away one.
#      GIMP3_TIMEOUT seconds (default 300).
#      GIMP3_XVFB=1  run under xvfb-run (needs xvfb and xauth in the chroot), so plug-in dialogs can open.
# Exit: 0 when the driver ran without an exception, 64 when it raised, anything else: crash or timeout.
set -euo pipefail
CHROOT=$(readlink -f "${1:?usage: gimp3-batch.sh CHROOT PROJECT_DIR PLUGIN_DIR DRIVER [VAR=VALUE ...]}")
PROJECT=$(readlink -f "$2"); PLUGIN_DIR=$3; DRIVER=$4; shift 4

# One run per chroot at a time: runs share the /project mount point.
exec 9>"$CHROOT/.gimp3-batch.lock"
flock 9

TMP_HOME=""
cleanup() {
    for m in project dev/pts dev proc; do
        if mountpoint -q "$CHROOT/$m"; then umount "$CHROOT/$m" 2>/dev/null || umount -l "$CHROOT/$m"; fi
    done
    [ -z "$TMP_HOME" ] || rm -rf --one-file-system "${CHROOT:?}$TMP_HOME"
}
trap cleanup EXIT

mkdir -p "$CHROOT/project"
mountpoint -q "$CHROOT/proc" || mount -t proc proc "$CHROOT/proc"
mountpoint -q "$CHROOT/dev" || mount --bind /dev "$CHROOT/dev"
mountpoint -q "$CHROOT/dev/pts" || mount --bind /dev/pts "$CHROOT/dev/pts"
mountpoint -q "$CHROOT/project" || { mount --bind "$PROJECT" "$CHROOT/project" && mount -o remount,bind,ro "$CHROOT/project"; }

# The profile folder carries the version (GIMP/3.0, GIMP/3.2); the binary is gimp-console-3.x behind gimp-console.
VERSION=$(chroot "$CHROOT" gimp-console --version | grep -oE '[0-9]+\.[0-9]+' | head -1)
if [ -n "${GIMP3_HOME:-}" ]; then H=$GIMP3_HOME; else TMP_HOME=/tmp/gimp3-home-$$; H=$TMP_HOME; fi
mkdir -p "$CHROOT$H/.config/GIMP/$VERSION"
GIMPRC="$CHROOT$H/.config/GIMP/$VERSION/gimprc"
# Append once: rewriting gimprc would make GIMP re-query every plug-in (about 5 s).
grep -qs ":/project/$PLUGIN_DIR\")" "$GIMPRC" ||
    echo "(plug-in-path \"\${gimp_dir}/plug-ins:\${gimp_plug_in_dir}/plug-ins:/project/$PLUGIN_DIR\")" >> "$GIMPRC"

DISPLAY_WRAPPER=()
[ "${GIMP3_XVFB:-0}" = 0 ] || DISPLAY_WRAPPER=(xvfb-run -a -s "-screen 0 1280x900x24")
set +e
timeout "${GIMP3_TIMEOUT:-300}" chroot "$CHROOT" env -i PATH=/usr/bin:/bin HOME="$H" LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 "$@" \
    "${DISPLAY_WRAPPER[@]}" gimp-console -i -n --batch-interpreter=python-fu-eval \
    -b "exec(open('/project/$DRIVER').read())" --quit
RC=$?
set -e
exit $RC
