#!/usr/bin/env bash
# Runs every test: unit tests, openraft's storage suite, and the cross-process tests that start
# real store members (and the reference etcd) and drive them with etcdctl and etcd clients.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

echo "==> building (first build compiles dependencies: ~13 minutes on 2 cores)"
cargo build --workspace --bins --tests
echo "==> running tests"
cargo test --workspace --no-fail-fast -- --test-threads="${TEST_THREADS:-2}"
# --workspace keeps the feature set of the run above, so nothing is rebuilt.
echo "==> the apiserver suites again, on the reference etcd"
STORE_FLAVOR=etcd cargo test --workspace --test kubectl --test api_errors --test api_faults --test pctl --test client_lib -- --test-threads="${TEST_THREADS:-2}"
