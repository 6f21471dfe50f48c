#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script).
# Provisions libtorch first (once per machine; a second run takes a second).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup-libtorch.sh
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo clippy --all-targets --no-default-features --features cli -- -D warnings
# The lean library (no libtorch, no CLI) as another crate's dev-dependency gets it.
cargo clippy --lib --no-default-features -- -D warnings
# API docs build without warnings (broken links, bad HTML), with and without libtorch.
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --no-default-features
# ... and the internals' docs (private items) stay as clean.
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --document-private-items
# With live libtorch (feature `torch`, the default) ...
cargo test
# ... and the pure-Rust core alone, as users without libtorch get it.
cargo test --no-default-features --features cli
# The parity kit as another crate uses it: a hand-written loss against the
# recorded fixtures, with no libtorch.
cargo run --quiet --no-default-features --example check_my_cross_entropy
# The bundled fixtures against live libtorch and their recorded values, under
# every ATen CPU kernel this CPU can run (the verdict must not depend on the
# kernel), and without libtorch.
for capability in $(bash scripts/aten-capabilities.sh); do
    echo "check with ATEN_CPU_CAPABILITY=$capability" >&2
    ATEN_CPU_CAPABILITY=$capability cargo run --quiet -- check --quiet
done
cargo run --quiet -- check --no-libtorch --quiet
# A bounded differential fuzz run over the whole surface (fixed seed; any
# mismatch is shrunk into target/fuzz-failures/ and fails the run).
cargo run --quiet -- fuzz --cases 5000 --seed 2026 --out target/fuzz-failures
# What crates.io would receive stays small (the bundled fixtures dominate).
cargo package --no-verify --allow-dirty --quiet
crate_bytes=$(stat -c %s target/package/ce-parity-*.crate)
echo "packaged crate: $crate_bytes bytes" >&2
test "$crate_bytes" -lt 10000000 || { echo "the packaged crate exceeds 10 MB" >&2; exit 1; }
