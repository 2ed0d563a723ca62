# bench/h2attack.mk: ferry-h2attack, a hostile HTTP/2 and HTTP/1.1 peer of
# ferryd's network ports (stream floods, rapid reset, slowloris, oversized
# metadata, many connections; issue 19), for bench/abuse.sh and
# tests/grpc/test_abuse.sh (included by bench/local.mk).
noinst_PROGRAMS += ferry-h2attack
ferry_h2attack_SOURCES = bench/h2attack.c
EXTRA_DIST += bench/abuse.sh bench/flood_bodies.py
