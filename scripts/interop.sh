#!/usr/bin/env bash
# Runs ce-parity's kit over real Rust libraries' cross-entropy (candle-nn,
# burn; adapters in interop/) and rewrites docs/compatibility.md from what it
# finds. Not part of CI (the two libraries take many minutes to build): run
# it after changing the kit, the fixtures or interop/'s dependency versions,
# and commit the regenerated document.
#
# interop/ is its own Cargo project (not a workspace member); it uses this
# crate by path with default-features = false, as a library's tests would.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# opt-level 1 in interop's release profile: compiled once, run over ~2,000 cases.
cargo build --release --manifest-path interop/Cargo.toml
interop/target/release/ce-parity-interop docs/compatibility.md
echo "interop: wrote docs/compatibility.md"
