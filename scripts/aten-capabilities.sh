#!/usr/bin/env bash
# Prints the ATEN_CPU_CAPABILITY values this CPU can run, one per line:
# `default` always, `avx2` and `avx512` when /proc/cpuinfo has the flags ATen
# requires. Says on stderr which ones are skipped and why.
set -euo pipefail
flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
has() { [[ "$flags" == *" $1 "* ]]; }
echo default
if has avx2 && has fma; then
    echo avx2
else
    echo "aten-capabilities: skipped avx2 (this CPU has no AVX2)" >&2
fi
if has avx512f && has avx512bw && has avx512dq && has avx512vl; then
    echo avx512
else
    echo "aten-capabilities: skipped avx512 (this CPU has no AVX-512)" >&2
fi
