#!/usr/bin/env bash
# Runs every test: formatting, unit tests, openraft's storage suite, and the cross-process tests
# that start real store members (and the reference etcd), apiservers, schedulers,
# controller-managers, agents and a private containerd, and drive them as users do.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

echo "==> formatting (cargo fmt --check)"
if cargo fmt --version >/dev/null 2>&1 && cargo clippy --version >/dev/null 2>&1; then
  cargo fmt --all --check
else
  echo "rustfmt or clippy is not installed (rustup's default profile has both:" \
    "rustup component add rustfmt clippy)" >&2
  exit 1
fi
echo "==> building (first build compiles dependencies: ~27 minutes on 2 cores)"
cargo build --workspace --bins --tests
echo "==> lints (cargo clippy -D warnings)"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> running tests"
cargo test --workspace --no-fail-fast -- --test-threads="${TEST_THREADS:-2}"
# --workspace keeps the feature set of the run above, so nothing is rebuilt.
echo "==> the apiserver suites again, on the reference etcd"
STORE_FLAVOR=etcd cargo test --workspace --test kubectl --test api_errors --test api_faults --test pctl --test client_lib -- --test-threads="${TEST_THREADS:-2}"
