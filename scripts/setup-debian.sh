#!/usr/bin/env bash
# Install what ferry's build and tests need on Debian 12: the Debian
# packages (apt-get) and, for the tests that use real third-party Python
# packages (onnx, onnxruntime, numpy, tritonclient), a virtual environment
# in .venv, whose onnxruntime wheel also carries the libonnxruntime.so that
# ferry's onnxruntime backend loads (configure finds it there).
# Idempotent: a second run installs nothing new.
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
	libmicrohttpd-dev libjson-c-dev zlib1g-dev libgnutls28-dev
	curl nghttp2-client
	libonnx-dev
	python3 python3-venv openssl
	valgrind
	clang libclang-rt-14-dev
	protobuf-compiler
	haproxy nginx
)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
	SUDO=
	[ "$(id -u)" = 0 ] || SUDO=sudo
	mkdir -p "$top/build"
	log=$top/build/setup.log
	echo "setup: installing ${missing[*]} (apt-get's output: $log)"
	{ $SUDO apt-get update &&
	  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
	} >"$log" 2>&1 || { tail -20 "$log"; echo "setup: apt-get failed: see $log"; exit 1; }
else
	echo "setup: the Debian packages are installed"
fi

if [ "${1:-}" != "--no-venv" ]; then
	venv="$top/.venv"
	if [ ! -x "$venv/bin/python" ]; then
		echo "setup: creating $venv"
		python3 -m venv "$venv"
	fi
	# pytest: python/tests (the ferry package); wheel: pip install ./python
	# without build isolation (no download); kubernetes-validate: the
	# Kubernetes API schemas that tests/deploy checks deploy/k8s against;
	# matplotlib: ferry-tune's plots
	want=(numpy onnx onnxruntime 'tritonclient[grpc]' 'tritonclient[http]' pytest wheel kubernetes-validate matplotlib)
	if ! "$venv/bin/python" -c 'import numpy, onnx, onnxruntime, tritonclient.grpc, tritonclient.http, pytest, wheel, kubernetes_validate, matplotlib' 2>/dev/null; then
		mkdir -p "$top/build"
		log=$top/build/setup-pip.log
		echo "setup: pip install ${want[*]} into $venv (pip's output: $log)"
		"$venv/bin/pip" install --disable-pip-version-check "${want[@]}" >"$log" 2>&1 ||
			{ tail -20 "$log"; echo "setup: pip failed: see $log"; exit 1; }
	fi
	# The onnxruntime backend loads this library; configure finds it here
	# (configure --with-onnxruntime=DIR names another).
	ortlib=$(ls "$venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1* 2>/dev/null |
		 head -n1 || true)
	if [ -n "$ortlib" ]; then
		echo "setup: ONNX Runtime for the onnxruntime backend: $ortlib"
	else
		echo "setup: the onnxruntime wheel has no libonnxruntime.so.1*: give configure --with-onnxruntime=DIR"
	fi
fi
