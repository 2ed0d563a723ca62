# tests/deploy.mk: what deploy/ ships (issue 18).  test_deploy.sh checks
# the HAProxy and nginx configurations with the proxies themselves and the
# Kubernetes manifests against the API schemas (kubernetes-validate) and
# each other; test_pool.sh runs three ferryd in network namespaces behind
# HAProxy and nginx (bench/pool.sh --check: root, about 40 s);
# sim/test_sim.py checks the scale model's simulator against cases worked
# out by hand.  Included by tests/local.mk whether or not Criterion was
# found.
TESTS += tests/deploy/test_deploy.sh tests/deploy/test_pool.sh sim/test_sim.py
EXTRA_DIST += tests/deploy/test_deploy.sh tests/deploy/test_pool.sh \
	tests/deploy/check_k8s.py tests/deploy/retry_client.py \
	bench/pool.sh deploy sim/ferrysim.py sim/scale.py sim/test_sim.py
