#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test_deploy.sh - deploy/ checked offline (make check): the proxies'
# configurations as the proxies themselves read them, HAProxy's health
# check bytes, and every Kubernetes manifest against the Kubernetes API
# schemas (kubernetes-validate, from PyPI, which ships the schemas: no
# cluster, no network) and against each other and ferryd
# (check_k8s.py).  One PASS: / FAIL: / SKIP: line per check, each counted
# by scripts/test-summary.sh; a check whose tool is missing is a SKIP
# with the reason.
set -u
top=${FERRY_TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${FERRY_TOP_BUILDDIR:-$top/build}
py=${FERRY_PYTHON:-$top/.venv/bin/python}
d=$top/deploy
tmp=$(mktemp -d /tmp/ferry-deploy-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { echo "PASS: $1: $2"; }
bad() { echo "FAIL: $1: $2"; fail=1; }
skip() { echo "SKIP: $1: $2"; }
have_yaml=0
if [ -x "$py" ] && "$py" -c 'import yaml, kubernetes_validate' 2>/dev/null; then have_yaml=1; fi
no_venv="no Python with kubernetes-validate ($py; scripts/setup-debian.sh installs it into .venv)"

# ---- HAProxy -------------------------------------------------------------
# The health check's bytes in haproxy.cfg (and in the Kubernetes copy) are
# the ones ready_check.py builds.
want=$(python3 "$d/haproxy/ready_check.py" | tr '\n' ' ')
check_bytes() {	# file
	local send expect
	send=$(sed -n 's/^[ \t]*tcp-check send-binary \([0-9a-f]*\)$/\1/p' "$1")
	expect=$(sed -n 's/^[ \t]*tcp-check expect binary \([0-9a-f]*\)$/\1/p' "$1")
	[ "$send $expect " = "$want" ]
}
if check_bytes "$d/haproxy/haproxy.cfg"; then
	ok haproxy_ready_check "haproxy.cfg sends one ServerReady call ($(($(cut -d' ' -f1 <<<"$want" | wc -c) / 2)) bytes) and expects ready: true, as ready_check.py builds them"
else
	bad haproxy_ready_check "haproxy.cfg's tcp-check bytes differ from deploy/haproxy/ready_check.py's"
fi
haproxy_reads() {	# NAME FILE WHAT: haproxy -c on FILE
	local out
	if out=$(haproxy -c -f "$2" 2>&1); then
		ok "$1" "haproxy -c: $(haproxy -v | head -1 | cut -d' ' -f1-3) reads $3"
	else
		bad "$1" "haproxy -c: $(grep -E 'ALERT' <<<"$out" | head -3)"
	fi
}
if command -v haproxy >/dev/null; then
	haproxy_reads haproxy_config "$d/haproxy/haproxy.cfg" deploy/haproxy/haproxy.cfg
else
	skip haproxy_config "no haproxy (Debian's haproxy; scripts/setup-debian.sh installs it)"
fi
if [ $have_yaml = 1 ]; then
	"$py" -c 'import sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc["kind"] == "ConfigMap" and "haproxy.cfg" in doc.get("data", {}):
        open(sys.argv[2], "w").write(doc["data"]["haproxy.cfg"])' "$d/k8s/gpu-pool.yaml" "$tmp/k8s-haproxy.cfg"
	if ! [ -s "$tmp/k8s-haproxy.cfg" ]; then
		bad haproxy_k8s_config "gpu-pool.yaml has no ConfigMap with an haproxy.cfg"
	elif ! check_bytes "$tmp/k8s-haproxy.cfg"; then
		bad haproxy_k8s_config "the ConfigMap's tcp-check bytes differ from ready_check.py's"
	elif ! command -v haproxy >/dev/null; then
		skip haproxy_k8s_config "no haproxy to read the ConfigMap's configuration"
	else
		haproxy_reads haproxy_k8s_config "$tmp/k8s-haproxy.cfg" \
			"gpu-pool.yaml's ConfigMap (brokers through DNS), whose check bytes are ready_check.py's"
	fi
else
	skip haproxy_k8s_config "$no_venv"
fi

# ---- nginx ---------------------------------------------------------------
if command -v nginx >/dev/null; then
	if out=$(nginx -t -q -e stderr -c "$d/nginx/nginx.conf" 2>&1); then
		ok nginx_config "nginx -t: $(nginx -v 2>&1 | sed 's/.*: //') reads deploy/nginx/nginx.conf"
	else
		bad nginx_config "nginx -t: $out"
	fi
else
	skip nginx_config "no nginx (Debian's nginx; scripts/setup-debian.sh installs it)"
fi

# ---- Kubernetes ------------------------------------------------------------
manifests=$(cd "$d/k8s" && ls *.yaml optional/*.yaml)
if [ $have_yaml = 1 ]; then
	kv=$(dirname "$py")/kubernetes-validate
	ver=$("$py" -c 'import importlib.metadata as m; print(m.version("kubernetes-validate"))')
	for f in $manifests; do
		out=$(cd "$d/k8s" && "$kv" --strict "$f" 2>&1)
		rc=$?
		n=$(grep -c ' passed for resource ' <<<"$out")
		crd=$(grep -c "Couldn't find schema for kind" <<<"$out")
		if [ $rc != 0 ] || grep -q '^ERROR' <<<"$out"; then
			bad "k8s_schema $f" "$(grep -E '^ERROR' <<<"$out" | head -3)"
		elif [ "$n" -gt 0 ]; then
			ok "k8s_schema $f" "$n resources valid against the Kubernetes $(sed -n 's/.*against version \([0-9.]*\).*/\1/p' <<<"$out" | head -1) API schemas (strict; kubernetes-validate $ver, offline)"
		elif [ "$crd" -gt 0 ]; then
			:	# custom resources only: k8s_crds checks them
		else
			bad "k8s_schema $f" "nothing validated: $out"
		fi
	done
	"$py" "$top/tests/deploy/check_k8s.py" "$d/k8s" "$build/broker/ferryd" || fail=1
else
	for f in $manifests; do skip "k8s_schema $f" "$no_venv"; done
fi
exit $fail
