#!/usr/bin/env bash
# Install what ferry's build and tests need on Debian 12: the Debian
# packages (apt-get) and, for the tests that use real third-party Python
# packages (onnx, onnxruntime, numpy, tritonclient), a virtual environment
# in .venv.  Idempotent: a second run installs nothing new.
#
#   scripts/setup-debian.sh            packages + .venv
#   scripts/setup-debian.sh --no-venv  packages only
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

PKGS=(
	build-essential autoconf automake libtool pkg-config
	liburing-dev libnuma-dev
	libprotobuf-c-dev protobuf-c-compiler
	libgrpc-dev
	libcriterion-dev
	libopenblas-dev
	libmicrohttpd-dev
	libonnx-dev
	python3 python3-venv openssl
	valgrind
	clang libclang-rt-14-dev
)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
	SUDO=
	[ "$(id -u)" = 0 ] || SUDO=sudo
	echo "setup: installing ${missing[*]}"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${1:-}" != "--no-venv" ]; then
	venv="$top/.venv"
	if [ ! -x "$venv/bin/python" ]; then
		echo "setup: creating $venv"
		python3 -m venv "$venv"
	fi
	want=(numpy onnx onnxruntime 'tritonclient[grpc]')
	if ! "$venv/bin/python" -c 'import numpy, onnx, onnxruntime, tritonclient.grpc' 2>/dev/null; then
		echo "setup: pip install ${want[*]}"
		"$venv/bin/pip" install -q --disable-pip-version-check "${want[@]}"
	fi
fi
