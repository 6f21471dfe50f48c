#!/usr/bin/env bash
# Provision libtorch for this checkout, once per machine.
#
# tch 0.26 binds to PyTorch 2.13.0. The only way to get libtorch offline on
# our machines is the PyPI wheel, so we install torch==2.13.0 into a virtualenv
# kept in a per-machine cache (outside the checkout), then point the checkout
# at it with a git-ignored `.libtorch` link. `.cargo/config.toml` (committed)
# sets LIBTORCH relative to that link, so plain `cargo build|test|run` work.
#
# Idempotent: a second run verifies the install and the link, and changes nothing.
# Override the cache location with CE_PARITY_CACHE (default ~/.cache/ce-parity).
set -euo pipefail

TORCH_VERSION="2.13.0"
CACHE="${CE_PARITY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ce-parity}"
VENV="$CACHE/torch-$TORCH_VERSION"
MARKER="$VENV/.ce-parity-ready"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() { echo "setup-libtorch: $*" >&2; exit 1; }

PYTHON="${PYTHON:-$(command -v python3 || true)}"
[ -n "$PYTHON" ] || die "python3 not found; install Python 3 (with pip and venv) or set PYTHON=/path/to/python3"

if [ ! -f "$MARKER" ]; then
    "$PYTHON" -m pip --version >/dev/null 2>&1 \
        || die "pip is missing for $PYTHON; install it (e.g. 'apt-get install python3-pip' or 'python3 -m ensurepip')"
    echo "setup-libtorch: installing torch==$TORCH_VERSION into $VENV (one time, ~5 GB, a few minutes)" >&2
    mkdir -p "$CACHE"
    rm -rf "$VENV.partial"
    "$PYTHON" -m venv "$VENV.partial" || die "could not create a virtualenv with $PYTHON -m venv"
    "$VENV.partial/bin/python" -m pip install --quiet --disable-pip-version-check \
        "torch==$TORCH_VERSION" || die "pip install torch==$TORCH_VERSION failed"
    # A venv hard-codes its own path in scripts; we only use site-packages, so a rename is safe.
    rm -rf "$VENV"
    mv "$VENV.partial" "$VENV"
    touch "$MARKER"
fi

SITE="$(ls -d "$VENV"/lib/python3*/site-packages 2>/dev/null | head -n1)"
[ -n "$SITE" ] && [ -f "$SITE/torch/lib/libtorch_cpu.so" ] \
    || die "no libtorch under $VENV; remove $VENV and run again"

LINK="$ROOT/.libtorch"
if [ "$(readlink "$LINK" 2>/dev/null || true)" != "$SITE" ]; then
    ln -sfn "$SITE" "$LINK"
    echo "setup-libtorch: linked $LINK -> $SITE" >&2
fi
echo "setup-libtorch: libtorch $TORCH_VERSION ready at $LINK/torch" >&2
