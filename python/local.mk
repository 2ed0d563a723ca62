# python/: the `ferry` Python package over libferry (ctypes: nothing to
# compile; `pip install ./python`).  make check runs its pytest suite
# against real ferryds (python/tests/run.sh; skipped, exit 77, where the
# venv lacks numpy or pytest).
TESTS += python/tests/run.sh
EXTRA_DIST += python/pyproject.toml python/setup.py python/README.md \
	python/ferry/__init__.py python/ferry/_client.py python/ferry/_cuda.py \
	python/ferry/_dtypes.py python/ferry/_errors.py python/ferry/_lib.py \
	python/tests/run.sh python/tests/conftest.py python/tests/test_api.py \
	python/tests/test_async.py python/tests/test_broker_death.py \
	python/tests/test_cuda.py python/tests/test_dtypes.py python/tests/test_install.py \
	python/tests/test_tritonclient.py python/tests/test_zero_copy.py \
	examples/python/simple.py examples/python/batch_loop.py bench/python_bench.py
