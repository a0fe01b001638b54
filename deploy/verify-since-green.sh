#!/bin/sh
# usage: verify-since-green.sh DIR OPS verify [ARGS...]
#
# Runs `OPS verify ARGS... --save-facts DIR/current` and exits with its exit code. A green run
# (exit 0) becomes DIR/last-green; after any other, `OPS facts diff DIR/last-green DIR/current`
# prints what changed on which host or API since the last green run (secret values never).
# Used by deploy/systemd/opsverify.service and deploy/ci/opsverify-nightly.yml.
set -u
if [ "$#" -lt 3 ]; then
    echo "usage: $0 DIR OPS verify [ARGS...]" >&2
    exit 2
fi
dir=$1 ops=$2
shift 2
mkdir -p "$dir" && rm -rf "$dir/current" || exit 2
code=0
"$ops" "$@" --save-facts "$dir/current" || code=$?
if [ "$code" -eq 0 ]; then
    rm -rf "$dir/last-green.old"
    if [ -d "$dir/last-green" ]; then mv "$dir/last-green" "$dir/last-green.old"; fi
    mv "$dir/current" "$dir/last-green" && rm -rf "$dir/last-green.old"
elif [ -d "$dir/last-green" ] && [ -d "$dir/current" ]; then
    echo "what changed since the last green run:"
    "$ops" facts diff "$dir/last-green" "$dir/current" || true
else
    echo "no green run's facts kept yet in $dir/last-green: nothing to compare with"
fi
exit "$code"
