#!/bin/sh
# SPDX-License-Identifier: MIT
#
# test_pool.sh - three ferryd behind HAProxy and nginx, in network
# namespaces (make check): bench/pool.sh --check, which prints one PASS: /
# FAIL: / SKIP: line per check (spread within +-10%, a SIGKILLed broker
# costs no request, the broker rejoins, ...).  Exit 77 (skipped) where
# network namespaces cannot be made (not root) or HAProxy is missing.
top=${FERRY_TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${FERRY_TOP_BUILDDIR:-$top/build}
exec "$top/bench/pool.sh" --check "$build"
