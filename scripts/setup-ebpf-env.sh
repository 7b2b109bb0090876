#!/usr/bin/env bash
# Makes bcc usable on this host. Idempotent.
#
# On a real node the distribution's headers for the running kernel are installed
# (linux-headers-$(uname -r)) and nothing below the mounts is needed. The
# `build`/`source` links are a workaround for development and CI machines that boot
# a custom kernel with no matching headers package: bcc then compiles against the
# newest Debian linux-headers-*-amd64 tree. Our programs read only tracepoint
# arguments, never kernel structs, so a header mismatch cannot misread memory.
set -euo pipefail

[ "$(id -u)" -eq 0 ] || { echo "setup-ebpf-env: not root, skipping" >&2; exit 0; }

if ! mountpoint -q /sys/kernel/tracing 2>/dev/null; then
  mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
fi
if ! mountpoint -q /sys/kernel/debug 2>/dev/null; then
  mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || true
fi

moddir="/lib/modules/$(uname -r)"
if [ ! -e "$moddir/build" ]; then
  hdr=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$hdr" ]; then
    common="${hdr%-amd64}-common"
    mkdir -p "$moddir"
    ln -sfn "$hdr" "$moddir/build"
    [ -d "$common" ] && ln -sfn "$common" "$moddir/source"
    echo "setup-ebpf-env: linked $moddir/build -> $hdr (custom kernel without its own headers)"
  else
    echo "setup-ebpf-env: no linux-headers-*-amd64 found; eBPF programs will report 'headers missing'" >&2
  fi
fi
