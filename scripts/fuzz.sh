#!/usr/bin/env bash
# Runs every fuzz target for a short fixed time over its checked-in corpus
# (fuzz/corpus/<target>), failing on a crash. Installs what cargo-fuzz needs:
# a nightly toolchain and cargo-fuzz itself (pinned). Costs about
# 5 minutes to build on a 2-core machine, then FUZZ_SECONDS per target.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-25}
cargo_fuzz_version=0.13.2

# RUSTUP_AUTO_INSTALL=0 on these machines: install nightly only if missing.
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version 2>/dev/null | grep -q "$cargo_fuzz_version"; then
    cargo install cargo-fuzz --locked --version "$cargo_fuzz_version"
fi

# No sanitizer: the code under test is safe Rust, and ASan would double
# the build and run time; panics and overflow checks still abort.
echo "fuzz: building the targets" >&2
cargo +nightly fuzz build -O -a -s none

targets=$(cargo +nightly fuzz list)
for target in $targets; do
    corpus=fuzz/corpus/$target
    mkdir -p "$corpus"
    # New inputs go to a scratch directory: the checked-in corpus stays as is.
    scratch=$(mktemp -d)
    echo "fuzz: $target for ${seconds}s" >&2
    # Module counter cells live as long as the instance: no leak detection.
    if ! cargo +nightly fuzz run -O -a -s none "$target" "$scratch" "$corpus" -- \
        -max_total_time="$seconds" -detect_leaks=0 -print_final_stats=1 \
        2>&1 | tail -n 25; then
        rm -rf "$scratch"
        echo "fuzz: $target crashed; the input is in fuzz/artifacts/$target" >&2
        exit 1
    fi
    rm -rf "$scratch"
done
