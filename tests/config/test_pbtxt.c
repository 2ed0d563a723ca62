/* The protobuf text-format parser: syntax, positions, errors, limits. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include <ferry/errors.h>

#include "broker/config/pbtxt.h"

static char err[512];

static struct pbtxt_doc *ok(const char *text)
{
	struct pbtxt_doc *d = NULL;
	int rc = pbtxt_parse(text, strlen(text), "t.pbtxt", NULL, &d, err, sizeof(err));
	cr_assert_eq(rc, 0, "parse failed: %s", err);
	cr_assert_not_null(d);
	return d;
}

static void bad(const char *text, const char *want)
{
	struct pbtxt_doc *d = (struct pbtxt_doc *)1;
	int rc = pbtxt_parse(text, strlen(text), "t.pbtxt", NULL, &d, err, sizeof(err));
	cr_assert_eq(rc, FERRY_CONFIG, "rc %d for <%s>", rc, text);
	cr_assert_null(d);
	cr_assert(strstr(err, want), "error '%s' lacks '%s'", err, want);
}

static const struct pbtxt_node *nth(const struct pbtxt_node *msg, int i)
{
	const struct pbtxt_node *n = msg->child;
	while (n && i--)
		n = n->next;
	cr_assert_not_null(n);
	return n;
}

Test(pbtxt, scalars_and_kinds)
{
	struct pbtxt_doc *d = ok("a: 12 b: -7 c: 0x1F d: 017 e: 1.5 f: -2.5e2 "
			      "g: 3f h: TYPE_FP32 i: \"s\" j: true k: -inf l: .5");
	const struct pbtxt_node *r = pbtxt_root(d);
	int64_t v;
	uint64_t u;
	double f;

	cr_assert_eq(r->nchildren, 12);
	cr_assert_eq(nth(r, 0)->kind, PBTXT_INT);
	cr_assert_eq(pbtxt_get_i64(nth(r, 0), &v), 0);
	cr_assert_eq(v, 12);
	cr_assert_eq(pbtxt_get_i64(nth(r, 1), &v), 0);
	cr_assert_eq(v, -7);
	cr_assert_eq(pbtxt_get_u64(nth(r, 1), &u), -ERANGE);
	cr_assert_eq(pbtxt_get_i64(nth(r, 2), &v), 0);
	cr_assert_eq(v, 31);
	cr_assert_eq(pbtxt_get_i64(nth(r, 3), &v), 0);
	cr_assert_eq(v, 15);
	cr_assert_eq(nth(r, 4)->kind, PBTXT_FLOAT);
	cr_assert_float_eq(nth(r, 4)->f, 1.5, 1e-12);
	cr_assert_float_eq(nth(r, 5)->f, -250.0, 1e-12);
	cr_assert_eq(nth(r, 6)->kind, PBTXT_FLOAT);
	cr_assert_float_eq(nth(r, 6)->f, 3.0, 1e-12);
	cr_assert_eq(nth(r, 7)->kind, PBTXT_IDENT);
	cr_assert_str_eq(nth(r, 7)->str, "TYPE_FP32");
	cr_assert_eq(nth(r, 8)->kind, PBTXT_STRING);
	cr_assert_eq(nth(r, 9)->kind, PBTXT_IDENT);
	cr_assert_eq(pbtxt_get_double(nth(r, 10), &f), 0);
	cr_assert(isinf(f) && f < 0);
	cr_assert_float_eq(nth(r, 11)->f, 0.5, 1e-12);
	cr_assert_eq(pbtxt_get_i64(nth(r, 7), &v), -EINVAL);
	pbtxt_free(d);
}

Test(pbtxt, integer_limits)
{
	struct pbtxt_doc *d = ok("a: 18446744073709551615 b: -9223372036854775808 "
			      "c: 9223372036854775808");
	const struct pbtxt_node *r = pbtxt_root(d);
	int64_t v;
	uint64_t u;

	cr_assert_eq(pbtxt_get_u64(nth(r, 0), &u), 0);
	cr_assert_eq(u, UINT64_MAX);
	cr_assert_eq(pbtxt_get_i64(nth(r, 0), &v), -ERANGE);
	cr_assert_eq(pbtxt_get_i64(nth(r, 1), &v), 0);
	cr_assert_eq(v, INT64_MIN);
	cr_assert_eq(pbtxt_get_i64(nth(r, 2), &v), -ERANGE);
	pbtxt_free(d);
	bad("a: 18446744073709551616", "t.pbtxt:1:4: integer out of range");
	bad("a: 0x", "hex number without digits");
	bad("a: 09", "invalid digit in octal number");
	bad("a: 12abc", "t.pbtxt:1:6: invalid character in number");
	bad("a: 1e", "exponent without digits");
	bad("a: -foo", "t.pbtxt:1:5: expected a number after '-'");
}

Test(pbtxt, nested_message_forms)
{
	struct pbtxt_doc *d = ok("a { x: 1 }\nb: { y: 2 }\nc < z: 3 >\nd: < >");
	const struct pbtxt_node *r = pbtxt_root(d);

	cr_assert_eq(r->nchildren, 4);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(nth(r, i)->kind, PBTXT_MSG);
	cr_assert_str_eq(nth(r, 0)->child->name, "x");
	cr_assert_str_eq(nth(r, 1)->child->name, "y");
	cr_assert_str_eq(nth(r, 2)->child->name, "z");
	cr_assert_eq(nth(r, 3)->nchildren, 0);
	pbtxt_free(d);
}

Test(pbtxt, lists_flatten_into_repeated_fields)
{
	struct pbtxt_doc *d = ok("dims: [1, -1, 3] dims: 4 empty: []\n"
			      "input [ { name: \"a\" }, { name: \"b\" } ]\n"
			      "input: [ < name: 'c' > ] input [ ] input [{}]");
	const struct pbtxt_node *r = pbtxt_root(d);
	int64_t v;

	cr_assert_eq(r->nchildren, 8);
	cr_assert_eq(nth(r, 7)->kind, PBTXT_MSG);
	cr_assert(nth(r, 7)->in_list);
	for (int i = 0; i < 4; i++)
		cr_assert_str_eq(nth(r, i)->name, "dims");
	cr_assert(nth(r, 0)->in_list);
	cr_assert(!nth(r, 3)->in_list);
	cr_assert_eq(pbtxt_get_i64(nth(r, 1), &v), 0);
	cr_assert_eq(v, -1);
	/* each element keeps its own value position */
	cr_assert_eq(nth(r, 1)->vcol, 11);
	cr_assert_eq(nth(r, 1)->col, 1);
	cr_assert_str_eq(nth(r, 4)->name, "input");
	cr_assert_eq(nth(r, 4)->kind, PBTXT_MSG);
	cr_assert_str_eq(nth(r, 5)->child->str, "b");
	cr_assert_str_eq(nth(r, 6)->child->str, "c");
	pbtxt_free(d);
}

Test(pbtxt, list_syntax_errors)
{
	bad("a: [1, 2", "t.pbtxt:1:4: '[' is never closed");
	bad("a: [1 2]", "t.pbtxt:1:7: expected ',' or ']' in list");
	bad("a: [[1]]", "t.pbtxt:1:5: lists cannot be nested");
	bad("a: [1,]", "t.pbtxt:1:7: expected a value");
	/* a list of values needs the colon, as in protobuf; a list of
	 * messages does not (Triton writes `input [ { ... } ]`) */
	bad("a [1]", "t.pbtxt:1:4: expected '{' in a list of messages, found '1'");
	bad("a [{}, 2]", "t.pbtxt:1:8: expected '{' in a list of messages");
}

Test(pbtxt, comments_and_separators)
{
	struct pbtxt_doc *d = ok("# header\n"
			      "a: 1, # trailing\n"
			      "b: 2;\n"
			      "c { d: \"#not a comment\" ; };  \n"
			      "# end without newline");
	const struct pbtxt_node *r = pbtxt_root(d);

	cr_assert_eq(r->nchildren, 3);
	cr_assert_str_eq(nth(r, 2)->child->str, "#not a comment");
	cr_assert_eq(nth(r, 2)->line, 4);
	pbtxt_free(d);
}

Test(pbtxt, string_escapes_and_concatenation)
{
	struct pbtxt_doc *d = ok("a: \"x\\ty\\n\\\\\\\"\\'\\?\"\n"
			      "b: 'it''s' \"ok\" # three pieces\n"
			      "c: \"\\101\\x42\\u00e9\\U0001F600\"\n"
			      "d: \"nul\\0in\"");
	const struct pbtxt_node *r = pbtxt_root(d);

	cr_assert_str_eq(nth(r, 0)->str, "x\ty\n\\\"'?");
	cr_assert_str_eq(nth(r, 1)->str, "itsok");
	cr_assert_str_eq(nth(r, 2)->str, "AB\xc3\xa9\xf0\x9f\x98\x80");
	cr_assert_eq(nth(r, 3)->len, 6);
	cr_assert_eq(memcmp(nth(r, 3)->str, "nul\0in", 6), 0);
	pbtxt_free(d);
}

Test(pbtxt, string_errors)
{
	bad("a: \"abc", "t.pbtxt:1:4: unterminated string");
	bad("a: \"ab\ncd\"", "t.pbtxt:1:4: unterminated string");
	bad("a: \"\\q\"", "t.pbtxt:1:5: unknown escape sequence");
	bad("a: \"\\x\"", "t.pbtxt:1:5: \\x escape without hex digits");
	bad("a: \"\\u12\"", "t.pbtxt:1:5: \\u escape needs 4 hex digits");
	bad("a: \"\\ud800\"", "invalid Unicode code point");
	bad("a: \"\\777\"", "octal escape out of range");
}

/* Exact positions: line and column (1-based, bytes) of the first error. */
Test(pbtxt, syntax_error_positions)
{
	bad("a: 1\nb {\n  c: 2\n", "t.pbtxt:2:3: '{' is never closed");
	bad("a: 1\n}\n", "t.pbtxt:2:1: unexpected '}'");
	bad("a: 1\n\tb 5\n", "t.pbtxt:2:4: expected ':' or '{' after field 'b', found '5'");
	bad("a:\n", "t.pbtxt:2:1: expected a value, found end of input");
	bad("a { b: 1 >", "t.pbtxt:1:10: unexpected '>'");
	bad("x: 1\n  : 2", "t.pbtxt:2:3: expected a field name, found ':'");
	bad("x: @", "t.pbtxt:1:4: expected a value, found '@'");
	bad("x: \x01", "t.pbtxt:1:4: expected a value, found byte 0x01");
	bad("x: 1\r\ny: $", "t.pbtxt:2:4: expected a value, found '$'");
}

Test(pbtxt, node_positions)
{
	struct pbtxt_doc *d = ok("\n  name: \"x\"\n\tinput {\n    dims: [ 4 ]\n  }\n");
	const struct pbtxt_node *r = pbtxt_root(d);
	const struct pbtxt_node *n = nth(r, 0), *in = nth(r, 1);

	cr_assert_eq(n->line, 2);
	cr_assert_eq(n->col, 3);
	cr_assert_eq(n->vline, 2);
	cr_assert_eq(n->vcol, 9);
	cr_assert_eq(in->line, 3);
	cr_assert_eq(in->col, 2);
	cr_assert_eq(in->vcol, 8);
	cr_assert_eq(in->child->line, 4);
	cr_assert_eq(in->child->col, 5);
	cr_assert_eq(in->child->vcol, 13);
	pbtxt_free(d);
}

Test(pbtxt, extension_names_parse)
{
	struct pbtxt_doc *d = ok("[type.googleapis.com/foo.Bar] { a: 1 }");

	cr_assert_str_eq(nth(pbtxt_root(d), 0)->name, "[type.googleapis.com/foo.Bar]");
	pbtxt_free(d);
	bad("[foo { }", "malformed extension field name");
}

Test(pbtxt, empty_inputs)
{
	struct pbtxt_doc *d = ok("");

	cr_assert_eq(pbtxt_root(d)->nchildren, 0);
	pbtxt_free(d);
	d = ok("  # only a comment");
	pbtxt_free(d);
	cr_assert_eq(pbtxt_parse(NULL, 0, NULL, NULL, &d, err, sizeof(err)), 0);
	pbtxt_free(d);
}

/* ---- hostile input: bounded, never a crash ---- */

Test(pbtxt, deep_nesting_is_bounded)
{
	size_t n = 100000;
	char *s = malloc(2 * n + 1);

	for (size_t i = 0; i < n; i++) {
		s[i] = 'a' + 0;
		s[n + i] = '}';
	}
	/* "a{a{a{..." : a name then a brace, 50000 deep */
	for (size_t i = 0; i < n; i += 2) {
		s[i] = 'a';
		s[i + 1] = '{';
	}
	s[2 * n] = '\0';
	struct pbtxt_doc *d;
	int rc = pbtxt_parse(s, 2 * n, "deep", NULL, &d, err, sizeof(err));
	cr_assert_eq(rc, FERRY_CONFIG);
	cr_assert(strstr(err, "nested deeper than 32"), "%s", err);
	cr_assert(strstr(err, "deep:1:66:"), "%s", err);
	free(s);

	/* exactly at the limit is fine */
	struct pbtxt_limits lim = { 1 << 20, 3, 1000, 1000 };
	cr_assert_eq(pbtxt_parse("a{b{c{}}}", 9, "x", &lim, &d, err, sizeof(err)), 0);
	pbtxt_free(d);
	cr_assert_eq(pbtxt_parse("a{b{c{d{}}}}", 12, "x", &lim, &d, err, sizeof(err)),
		     FERRY_CONFIG);
	cr_assert(strstr(err, "x:1:8: messages nested deeper than 3"), "%s", err);
}

Test(pbtxt, limits_on_size_nodes_and_strings)
{
	struct pbtxt_limits lim = { 64, 8, 4, 8 };
	struct pbtxt_doc *d;

	char big[65];
	memset(big, ' ', 64);
	big[64] = '\0';
	cr_assert_eq(pbtxt_parse(big, 64, "x", &lim, &d, err, sizeof(err)), 0);
	pbtxt_free(d);
	lim.max_input = 63;
	cr_assert_eq(pbtxt_parse(big, 64, "x", &lim, &d, err, sizeof(err)), FERRY_CONFIG);
	cr_assert(strstr(err, "input larger than 63 bytes"), "%s", err);
	lim.max_input = 64;

	cr_assert_eq(pbtxt_parse("a:1 b:2 c:3 d:4 e:5", 19, "x", &lim, &d, err,
			      sizeof(err)), FERRY_CONFIG);
	cr_assert(strstr(err, "x:1:17: too many fields (limit 4)"), "%s", err);
	cr_assert_eq(pbtxt_parse("a: [1,2,3,4,5]", 14, "x", &lim, &d, err,
			      sizeof(err)), FERRY_CONFIG);
	cr_assert(strstr(err, "too many fields"), "%s", err);

	cr_assert_eq(pbtxt_parse("s: \"12345678\"", 13, "x", &lim, &d, err,
			      sizeof(err)), 0);
	pbtxt_free(d);
	cr_assert_eq(pbtxt_parse("s: \"1234\" \"56789\"", 17, "x", &lim, &d, err,
			      sizeof(err)), FERRY_CONFIG);
	cr_assert(strstr(err, "string longer than 8 bytes"), "%s", err);
}

/* The least CPU time (s) of 5 parses of n repeated fields (10 bytes each),
 * each checked. */
static double parse_cpu_s(size_t n)
{
	char *s = malloc(n * 10 + 1);
	size_t len = 0;
	double best = 1e30;
	cr_assert_not_null(s);
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(s + len, "dims: %3zu\n", i % 1000);
	for (int k = 0; k < 5; k++) {
		struct pbtxt_doc *d;
		struct timespec t0, t1;
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
		cr_assert_eq(pbtxt_parse(s, len, "big", NULL, &d, err, sizeof(err)), 0, "%s", err);
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
		cr_assert_eq(pbtxt_root(d)->nchildren, (int)n);
		pbtxt_free(d);
		double t = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		if (t < best)
			best = t;
	}
	free(s);
	return best;
}

/*
 * 1 MiB of repeated fields (under the default node limit) parses, and in
 * time linear in its size: four times the input may cost at most eight
 * times the CPU time (a parser quadratic anywhere would cost sixteen).
 * CPU time of this process, best of five, two sizes in the same run: no
 * wall-clock bound, so the other work on the machine does not decide.
 */
Test(pbtxt, huge_input_parses_linearly)
{
	double small = parse_cpu_s(25000), big = parse_cpu_s(100000);
	cr_log_info("pbtxt: 25,000 fields in %.2f ms, 100,000 in %.2f ms (x%.1f)", small * 1e3,
		    big * 1e3, big / small);
	cr_assert_lt(big, 8 * small, "4x the input took %.1fx the CPU time (%.2f ms, %.2f ms)",
		     big / small, small * 1e3, big * 1e3);
}

/* Every prefix of a real config either parses or fails cleanly. */
Test(pbtxt, truncated_inputs_never_crash)
{
	static const char cfg[] =
		"name: \"m\" # c\n"
		"input [ { name: 'a\\tb' data_type: TYPE_FP32 dims: [ -1, 0x10 ] } ]\n"
		"dynamic_batching < preferred_batch_size: [4,8]; max_queue_delay_microseconds: 1.5e2f >\n"
		"parameters: { key: \"k\" \"2\" value: { string_value: \"\\u00e9\\101\" } }\n"
		"[ext.x/y] { }\n";
	size_t len = strlen(cfg);

	for (size_t i = 0; i <= len; i++) {
		/* an exact-size heap copy, so ASan sees any over-read */
		char *p = malloc(i ? i : 1);
		memcpy(p, cfg, i);
		struct pbtxt_doc *d;
		int rc = pbtxt_parse(p, i, "trunc", NULL, &d, err, sizeof(err));
		cr_assert(rc == 0 || rc == FERRY_CONFIG, "prefix %zu: rc %d", i, rc);
		if (rc == 0)
			pbtxt_free(d);
		else
			cr_assert(!strncmp(err, "trunc:", 6), "%s", err);
		free(p);
	}
}

Test(pbtxt, random_bytes_never_crash)
{
	static const char alphabet[] = "ab_:{}<>[],;\"'\\#-.0x1e\n \tfu";
	unsigned seed = 12345;

	for (int round = 0; round < 3000; round++) {
		size_t len = (size_t)(rand_r(&seed) % 200);
		char *p = malloc(len ? len : 1);
		for (size_t i = 0; i < len; i++) {
			int r = rand_r(&seed);
			p[i] = (r & 1) ? alphabet[(r >> 1) % (sizeof(alphabet) - 1)]
				       : (char)(r >> 3);
		}
		struct pbtxt_doc *d;
		int rc = pbtxt_parse(p, len, "rnd", NULL, &d, err, sizeof(err));
		cr_assert(rc == 0 || rc == FERRY_CONFIG);
		pbtxt_free(rc == 0 ? d : NULL);
		free(p);
	}
}

Test(pbtxt, small_error_buffers)
{
	struct pbtxt_doc *d;
	char tiny[8];

	cr_assert_eq(pbtxt_parse("a: @", 4, "a-long-file-name", NULL, &d, tiny,
			      sizeof(tiny)), FERRY_CONFIG);
	cr_assert_eq(strlen(tiny), 7);
	cr_assert_eq(pbtxt_parse("a: @", 4, "f", NULL, &d, NULL, 0), FERRY_CONFIG);
}
