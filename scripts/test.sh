#!/usr/bin/env bash
# Sets up a fresh machine and runs every test: formatting and lints (host
# and wasm), unit tests, and the end-to-end tests, which deploy real chains
# in namespaces (they need root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

cargo fmt --all --check
cargo clippy --release --workspace --all-targets -- -D warnings
cargo clippy --target wasm32-unknown-unknown -p vnf-sdk -p vnf-router -p vnf-firewall -p vnf-nat -p vnf-dhcp -p vnf-faulty -p vnf-switch -p vnf-impair -- -D warnings
# The SDK's API documentation must be complete (missing_docs) and build
# without warnings; its examples run as doctests in the step below.
RUSTDOCFLAGS="-D warnings" cargo doc -p vnf-sdk --no-deps
cargo test --release --workspace

# Fuzzing last: each target briefly over its checked-in corpus.
bash scripts/fuzz.sh
