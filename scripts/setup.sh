#!/usr/bin/env bash
# Installs what nfvhost needs on a fresh Debian machine: the tools its
# chains and tests run in test hosts, the wasm target, and a release build
# of nfvhost with every shipped VNF. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "setup: run as root (it installs packages; nfvhost creates namespaces)" >&2
    exit 2
fi

packages=(
    iproute2 iputils-ping iputils-tracepath traceroute ethtool tcpdump
    iperf3 isc-dhcp-client udhcpc busybox netcat-openbsd curl python3
    nftables netsniff-ng prometheus python3-matplotlib graphviz
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # The prometheus package must not start a server of its own here.
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# RUSTUP_AUTO_INSTALL=0 on these machines: add the pinned toolchain's
# target and components explicitly.
toolchain=$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)
rustup target add wasm32-unknown-unknown --toolchain "$toolchain" >/dev/null
rustup component add rustfmt clippy --toolchain "$toolchain" >/dev/null

echo "setup: building nfvhost and the VNFs" >&2
cargo build --release -p nfvhost
cargo vnfs

# The README's commands say `nfvhost ...`: put this build on the PATH. A
# link, so later builds are picked up; an existing file that is not our
# link is left alone.
link=/usr/local/bin/nfvhost
target="$PWD/target/release/nfvhost"
if [ -L "$link" ] || [ ! -e "$link" ]; then
    ln -sfn "$target" "$link"
    echo "setup: $link -> $target" >&2
else
    echo "setup: $link exists and is not a link; left alone (run $target)" >&2
fi
