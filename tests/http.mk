# tests/http.mk: the HTTP/REST front end against a real ferryd: the
# tritonclient.http suite (skipped, exit 77, when the venv lacks
# tritonclient[http]), the curl examples of docs/USING.md, run as
# written, and TLS / mutual TLS with curl.
TESTS += tests/http/run_python.sh tests/http/test_docs_curl.sh tests/http/test_http_tls.sh
EXTRA_DIST += tests/http/run_python.sh tests/http/test_tritonclient_http.py \
	tests/http/test_docs_curl.sh tests/http/test_http_tls.sh tests/tritonclient_util.py \
	tests/tls_certs.sh
