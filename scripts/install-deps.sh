#!/bin/sh
# Installs what ckpt needs to build and test on Debian 12, with apt-get.
# Idempotent and quiet when everything is already there.
set -eu

NATIVE="build-essential cmake ninja-build pkg-config git python3 libssl-dev openssl \
  libgtest-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev \
  libzstd-dev zlib1g-dev libxxhash-dev zstd libnftables-dev nftables \
  clang libclang-rt-14-dev clang-format \
  perl sqlite3 nodejs redis-server redis-tools procps psmisc util-linux iproute2 strace xz-utils \
  openssh-server openssh-client socat time slurm-wlm munge"
CROSS="g++-mingw-w64-x86-64 libz-mingw-w64-dev wine wine64 qemu-user \
  g++-aarch64-linux-gnu g++-s390x-linux-gnu g++-i686-linux-gnu"
# zstd for the static aarch64 and s390x builds (multiarch; optional).
FOREIGN="libzstd-dev:arm64 libzstd-dev:s390x"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing() {
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      printf '%s ' "$p"
    fi
  done
}

need=$(missing $NATIVE $CROSS)
if [ -n "$need" ]; then
  echo "install-deps: installing $need"
  $SUDO apt-get update -qq || echo "install-deps: warning: apt-get update reported errors; trying anyway"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

need=$(missing $FOREIGN)
if [ -n "$need" ]; then
  archs=$(dpkg --print-foreign-architectures)
  added=""
  for a in arm64 s390x; do
    case " $archs " in *" $a "*) ;; *) $SUDO dpkg --add-architecture "$a"; added=1 ;; esac
  done
  if [ -n "$added" ]; then
    $SUDO apt-get update -qq || echo "install-deps: warning: apt-get update reported errors; trying anyway"
  fi
  echo "install-deps: installing $need"
  if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null; then
    echo "install-deps: warning: could not install $need; aarch64/s390x builds will lack zstd"
  fi
fi
exit 0
