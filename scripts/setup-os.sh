#!/usr/bin/env bash
# Installs the OS packages infernode's build, tests and benchmarks need, only when missing.
# Idempotent: a converged machine costs one dpkg-query.
set -euo pipefail

PACKAGES=(
  python3 python3-venv python3-dev          # the virtualenv is made from the system Python
  python3-bpfcc bpfcc-tools bpftool         # bcc comes from the OS, never from PyPI
  linux-headers-amd64                       # bcc compiles programs against kernel headers
  prometheus prometheus-node-exporter       # real Prometheus/promtool in tests; node_exporter for `make bench`
  debootstrap systemd-container             # real systemd (nspawn) and real apt roots in tests
  iproute2 nftables ethtool                 # network namespaces, packet drop, NIC tunables
  rt-tests                                  # hackbench for the eBPF overhead benchmark
  ansible-core ansible-lint                 # fleet rollout role: lint, syntax check, real rollout tests
  dpkg-dev                                  # dpkg-scanpackages: the bootstrap tests' local apt repository
  openssh-client                            # ssh and ssh-keygen: the rollout test reaches its hosts over SSH
  python3-pyfuse3                           # the slow-disk test double (FUSE medium under a loop device); as root
                                            # libfuse mounts and unmounts with mount(2)/umount2(2): fuse3's fusermount3 is not needed
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  echo "setup-os: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup-os: need root to install OS packages (missing: ${missing[*]})" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# tuned's profile files, for the test that checks docs/tuning.md's comparison against
# them: the package is unpacked, not installed (its daemon would tune this host).
TUNED_CACHE=/var/cache/infernode-tests/tuned
if [ ! -f "$TUNED_CACHE/usr/lib/tuned/cpu-partitioning/tuned.conf" ] && [ ! -d /usr/lib/tuned/cpu-partitioning ]; then
  if [ "$(id -u)" -eq 0 ]; then
    tmp=$(mktemp -d)
    if (cd "$tmp" && apt-get -o DPkg::Lock::Timeout=300 download -qq tuned >/dev/null 2>&1); then
      mkdir -p "$TUNED_CACHE"
      dpkg-deb -x "$tmp"/tuned_*.deb "$TUNED_CACHE"
      echo "setup-os: unpacked tuned's profiles into $TUNED_CACHE"
    else
      echo "setup-os: could not download tuned; the tuned comparison test will skip" >&2
    fi
    rm -rf "$tmp"
  fi
fi

bash "$(dirname "$0")/setup-ebpf-env.sh"
