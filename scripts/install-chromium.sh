#!/usr/bin/env sh
# Debian's chromium for the tests that render pages headless (through playwright, which is told
# to use this binary and never downloads a browser of its own). Needs root or sudo once.
set -eu
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-chromium: Debian's chromium is missing and this user cannot install it;" \
        "run 'apt-get install chromium' as root, then 'make test' again" >&2
    exit 1
fi
# Another install (a second checkout's set-up) may hold dpkg's lock: wait for it, not fail.
WAIT="-o DPkg::Lock::Timeout=600"
$SUDO apt-get install $WAIT -y -q chromium >/dev/null 2>&1 || {
    $SUDO apt-get update $WAIT -q >/dev/null
    $SUDO apt-get install $WAIT -y -q chromium >/dev/null
}
command -v chromium >/dev/null
