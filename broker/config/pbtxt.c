/* SPDX-License-Identifier: MIT */
/*
 * pbtxt.c - protobuf text format parser (see pbtxt.h for why it exists).
 *
 * One pass of recursive descent straight over the bytes, no separate token
 * stream.  Every node and string lives in one chunked arena owned by the
 * document, so a failed parse frees everything in one call and no node
 * needs its own error path.  Recursion depth is bounded by max_depth; every
 * loop advances the cursor or stops, so the cost is linear in the input.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ferry/errors.h>

#include "broker/config/pbtxt.h"

/* ------------------------------------------------------------------ */
/* arena */

struct pbtxt__chunk {
	struct pbtxt__chunk *prev;
	size_t used, size;
	max_align_t data[];
};

struct pbtxt_doc {
	struct pbtxt__chunk *chunks;
	char *file;
	struct pbtxt_node root;
};

#define PBTXT_CHUNK_MIN 8192

static void *pbtxt__arena_alloc(struct pbtxt_doc *d, size_t n)
{
	struct pbtxt__chunk *c = d->chunks;
	size_t al = _Alignof(max_align_t);

	n = (n + al - 1) & ~(al - 1);
	if (!c || c->size - c->used < n) {
		size_t sz = n > PBTXT_CHUNK_MIN ? n : PBTXT_CHUNK_MIN;

		c = malloc(sizeof(*c) + sz);
		if (!c)
			return NULL;
		c->prev = d->chunks;
		c->used = 0;
		c->size = sz;
		d->chunks = c;
	}
	void *p = (char *)c->data + c->used;
	c->used += n;
	return p;
}

static char *pbtxt__arena_strndup(struct pbtxt_doc *d, const char *s, size_t n)
{
	char *p = pbtxt__arena_alloc(d, n + 1);

	if (!p)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void pbtxt_free(struct pbtxt_doc *doc)
{
	if (!doc)
		return;
	struct pbtxt__chunk *c = doc->chunks;
	while (c) {
		struct pbtxt__chunk *prev = c->prev;
		free(c);
		c = prev;
	}
	free(doc->file);
	free(doc);
}

const struct pbtxt_node *pbtxt_root(const struct pbtxt_doc *doc)
{
	return &doc->root;
}

const char *pbtxt_file(const struct pbtxt_doc *doc)
{
	return doc->file;
}

const char *pbtxt_kind_name(enum pbtxt_kind kind)
{
	switch (kind) {
	case PBTXT_MSG: return "message";
	case PBTXT_INT: return "integer";
	case PBTXT_FLOAT: return "float";
	case PBTXT_STRING: return "string";
	case PBTXT_IDENT: return "identifier";
	}
	return "?";
}

/* ------------------------------------------------------------------ */
/* cursor and errors */

struct parser {
	const char *s;
	size_t len, pos;
	unsigned line, col;
	struct pbtxt_doc *doc;
	struct pbtxt_limits lim;
	size_t nnodes;
	char *sbuf;             /* scratch for decoding strings */
	size_t scap;
	char *err;
	size_t errlen;
	int rc;                 /* first error: sticky */
};

static int pbtxt__perr_at(struct parser *p, unsigned line, unsigned col,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int pbtxt__perr_at(struct parser *p, unsigned line, unsigned col,
		   const char *fmt, ...)
{
	if (p->rc)
		return p->rc;
	p->rc = FERRY_CONFIG;
	if (p->err && p->errlen) {
		int n = snprintf(p->err, p->errlen, "%s:%u:%u: ",
				 p->doc->file, line, col);
		if (n >= 0 && (size_t)n < p->errlen) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(p->err + n, p->errlen - n, fmt, ap);
			va_end(ap);
		}
	}
	return p->rc;
}

#define perr(p, ...) pbtxt__perr_at((p), (p)->line, (p)->col, __VA_ARGS__)

static int pbtxt__pnomem(struct parser *p)
{
	if (!p->rc) {
		p->rc = FERRY_ENOMEM;
		if (p->err && p->errlen)
			snprintf(p->err, p->errlen, "%s: out of memory",
				 p->doc->file);
	}
	return p->rc;
}

static int pbtxt__peekc(const struct parser *p)
{
	return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}

static int pbtxt__peekc2(const struct parser *p)
{
	return p->pos + 1 < p->len ? (unsigned char)p->s[p->pos + 1] : -1;
}

static void pbtxt__advance(struct parser *p)
{
	if (p->pos >= p->len)
		return;
	if (p->s[p->pos] == '\n') {
		p->line++;
		p->col = 1;
	} else {
		p->col++;
	}
	p->pos++;
}

/* Skip whitespace and # comments (to the end of the line). */
static void pbtxt__skip_ws(struct parser *p)
{
	for (;;) {
		int c = pbtxt__peekc(p);
		if (c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
		    c == '\f' || c == '\v') {
			pbtxt__advance(p);
		} else if (c == '#') {
			while (pbtxt__peekc(p) >= 0 && pbtxt__peekc(p) != '\n')
				pbtxt__advance(p);
		} else {
			return;
		}
	}
}

static bool pbtxt__is_ident_start(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool pbtxt__is_ident_char(int c)
{
	return pbtxt__is_ident_start(c) || (c >= '0' && c <= '9');
}

static bool pbtxt__is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/* A printable description of the byte at the cursor, for messages. */
static const char *pbtxt__describe(const struct parser *p, char *buf, size_t n)
{
	int c = pbtxt__peekc(p);

	if (c < 0)
		return "end of input";
	if (c >= 0x21 && c < 0x7f)
		snprintf(buf, n, "'%c'", c);
	else
		snprintf(buf, n, "byte 0x%02x", (unsigned)c);
	return buf;
}

static struct pbtxt_node *pbtxt__new_node(struct parser *p, const char *name,
				unsigned line, unsigned col)
{
	if (p->nnodes >= p->lim.max_nodes) {
		pbtxt__perr_at(p, line, col, "too many fields (limit %zu)",
			p->lim.max_nodes);
		return NULL;
	}
	struct pbtxt_node *n = pbtxt__arena_alloc(p->doc, sizeof(*n));
	if (!n) {
		pbtxt__pnomem(p);
		return NULL;
	}
	memset(n, 0, sizeof(*n));
	n->name = name;
	n->line = line;
	n->col = col;
	p->nnodes++;
	return n;
}

/* ------------------------------------------------------------------ */
/* scalars */

static int pbtxt__sbuf_put(struct parser *p, size_t *n, const char *bytes, size_t k)
{
	if (*n + k > p->lim.max_string)
		return perr(p, "string longer than %zu bytes", p->lim.max_string);
	if (*n + k + 1 > p->scap) {
		size_t cap = p->scap ? p->scap : 64;
		while (cap < *n + k + 1)
			cap *= 2;
		char *b = realloc(p->sbuf, cap);
		if (!b)
			return pbtxt__pnomem(p);
		p->sbuf = b;
		p->scap = cap;
	}
	memcpy(p->sbuf + *n, bytes, k);
	*n += k;
	return 0;
}

static int pbtxt__hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int pbtxt__put_utf8(struct parser *p, size_t *n, uint32_t cp,
		    unsigned line, unsigned col)
{
	char b[4];
	size_t k;

	if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return pbtxt__perr_at(p, line, col, "invalid Unicode code point U+%X", cp);
	if (cp < 0x80) {
		b[0] = (char)cp;
		k = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | (cp >> 6));
		b[1] = (char)(0x80 | (cp & 0x3f));
		k = 2;
	} else if (cp < 0x10000) {
		b[0] = (char)(0xe0 | (cp >> 12));
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		k = 3;
	} else {
		b[0] = (char)(0xf0 | (cp >> 18));
		b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (char)(0x80 | (cp & 0x3f));
		k = 4;
	}
	return pbtxt__sbuf_put(p, n, b, k);
}

/* One quoted string, cursor on the quote; appends to sbuf. */
static int pbtxt__parse_one_string(struct parser *p, size_t *n)
{
	int q = pbtxt__peekc(p);
	unsigned sl = p->line, sc = p->col;

	pbtxt__advance(p);
	for (;;) {
		int c = pbtxt__peekc(p);
		if (c < 0 || c == '\n')
			return pbtxt__perr_at(p, sl, sc, "unterminated string");
		if (c == q) {
			pbtxt__advance(p);
			return 0;
		}
		if (c != '\\') {
			char ch = (char)c;
			pbtxt__advance(p);
			if (pbtxt__sbuf_put(p, n, &ch, 1))
				return p->rc;
			continue;
		}
		unsigned el = p->line, ec = p->col;
		pbtxt__advance(p);
		c = pbtxt__peekc(p);
		char ch;
		switch (c) {
		case 'n': ch = '\n'; break;
		case 't': ch = '\t'; break;
		case 'r': ch = '\r'; break;
		case 'a': ch = '\a'; break;
		case 'b': ch = '\b'; break;
		case 'f': ch = '\f'; break;
		case 'v': ch = '\v'; break;
		case '\\': ch = '\\'; break;
		case '\'': ch = '\''; break;
		case '"': ch = '"'; break;
		case '?': ch = '?'; break;
		case '0': case '1': case '2': case '3':
		case '4': case '5': case '6': case '7': {
			unsigned v = 0;
			for (int i = 0; i < 3 && pbtxt__peekc(p) >= '0' && pbtxt__peekc(p) <= '7'; i++) {
				v = v * 8 + (unsigned)(pbtxt__peekc(p) - '0');
				pbtxt__advance(p);
			}
			if (v > 0xff)
				return pbtxt__perr_at(p, el, ec, "octal escape out of range");
			ch = (char)v;
			if (pbtxt__sbuf_put(p, n, &ch, 1))
				return p->rc;
			continue;
		}
		case 'x': case 'X': {
			unsigned v = 0;
			int i;
			pbtxt__advance(p);
			for (i = 0; i < 2 && pbtxt__hexval(pbtxt__peekc(p)) >= 0; i++) {
				v = v * 16 + (unsigned)pbtxt__hexval(pbtxt__peekc(p));
				pbtxt__advance(p);
			}
			if (i == 0)
				return pbtxt__perr_at(p, el, ec, "\\x escape without hex digits");
			ch = (char)v;
			if (pbtxt__sbuf_put(p, n, &ch, 1))
				return p->rc;
			continue;
		}
		case 'u': case 'U': {
			int want = c == 'u' ? 4 : 8;
			uint32_t v = 0;
			pbtxt__advance(p);
			for (int i = 0; i < want; i++) {
				int h = pbtxt__hexval(pbtxt__peekc(p));
				if (h < 0)
					return pbtxt__perr_at(p, el, ec,
						       "\\%c escape needs %d hex digits",
						       c, want);
				if (v > 0x10ffff)
					return pbtxt__perr_at(p, el, ec,
						       "invalid Unicode escape");
				v = v * 16 + (uint32_t)h;
				pbtxt__advance(p);
			}
			if (pbtxt__put_utf8(p, n, v, el, ec))
				return p->rc;
			continue;
		}
		default:
			if (c < 0 || c == '\n')
				return pbtxt__perr_at(p, sl, sc, "unterminated string");
			return pbtxt__perr_at(p, el, ec, "unknown escape sequence");
		}
		pbtxt__advance(p);
		if (pbtxt__sbuf_put(p, n, &ch, 1))
			return p->rc;
	}
}

/* Adjacent strings concatenate: "a" 'b' "c" is "abc". */
static int pbtxt__parse_string(struct parser *p, struct pbtxt_node *nd)
{
	size_t n = 0;

	for (;;) {
		if (pbtxt__parse_one_string(p, &n))
			return p->rc;
		pbtxt__skip_ws(p);
		if (pbtxt__peekc(p) != '"' && pbtxt__peekc(p) != '\'')
			break;
	}
	nd->kind = PBTXT_STRING;
	nd->str = pbtxt__arena_strndup(p->doc, n ? p->sbuf : "", n);
	if (!nd->str)
		return pbtxt__pnomem(p);
	nd->len = n;
	return 0;
}

/*
 * A number, cursor on its first digit or '.'.  Integers keep their exact
 * magnitude (uint64, the widest protobuf integer); anything with '.', an
 * exponent or an 'f' suffix is a float.
 */
static int pbtxt__parse_number(struct parser *p, struct pbtxt_node *nd, bool neg)
{
	size_t start = p->pos;
	unsigned sl = p->line, sc = p->col;
	bool is_float = false;
	int base = 10;

	if (pbtxt__peekc(p) == '0' && (pbtxt__peekc2(p) == 'x' || pbtxt__peekc2(p) == 'X')) {
		base = 16;
		pbtxt__advance(p);
		pbtxt__advance(p);
		if (pbtxt__hexval(pbtxt__peekc(p)) < 0)
			return perr(p, "hex number without digits");
		while (pbtxt__hexval(pbtxt__peekc(p)) >= 0)
			pbtxt__advance(p);
	} else {
		while (pbtxt__is_digit(pbtxt__peekc(p)))
			pbtxt__advance(p);
		if (pbtxt__peekc(p) == '.') {
			is_float = true;
			pbtxt__advance(p);
			while (pbtxt__is_digit(pbtxt__peekc(p)))
				pbtxt__advance(p);
		}
		if (pbtxt__peekc(p) == 'e' || pbtxt__peekc(p) == 'E') {
			is_float = true;
			pbtxt__advance(p);
			if (pbtxt__peekc(p) == '+' || pbtxt__peekc(p) == '-')
				pbtxt__advance(p);
			if (!pbtxt__is_digit(pbtxt__peekc(p)))
				return perr(p, "exponent without digits");
			while (pbtxt__is_digit(pbtxt__peekc(p)))
				pbtxt__advance(p);
		}
		if (pbtxt__peekc(p) == 'f' || pbtxt__peekc(p) == 'F') {
			is_float = true;
			pbtxt__advance(p);
		}
		if (!is_float && p->pos - start > 1 && p->s[start] == '0')
			base = 8;
	}
	if (pbtxt__is_ident_char(pbtxt__peekc(p)) || pbtxt__peekc(p) == '.')
		return perr(p, "invalid character in number");

	size_t tl = p->pos - start;
	if (tl > 128)
		return pbtxt__perr_at(p, sl, sc, "number too long");
	char buf[136];
	memcpy(buf, p->s + start, tl);
	buf[tl] = '\0';

	nd->neg = neg;
	nd->str = pbtxt__arena_strndup(p->doc, buf, tl);
	if (!nd->str)
		return pbtxt__pnomem(p);
	nd->len = tl;
	if (is_float) {
		if (buf[tl - 1] == 'f' || buf[tl - 1] == 'F')
			buf[tl - 1] = '\0';
		/* The broker never calls setlocale(), so strtod reads '.' as
		 * the decimal point. */
		nd->kind = PBTXT_FLOAT;
		nd->f = strtod(buf, NULL);
		if (neg)
			nd->f = -nd->f;
		return 0;
	}
	uint64_t v = 0;
	const char *d = buf + (base == 16 ? 2 : 0);
	for (; *d; d++) {
		int h = pbtxt__hexval((unsigned char)*d);
		if (h < 0 || h >= base)
			return pbtxt__perr_at(p, sl, sc, "invalid digit in %s number",
				       base == 8 ? "octal" : "decimal");
		if (v > (UINT64_MAX - (uint64_t)h) / (uint64_t)base)
			return pbtxt__perr_at(p, sl, sc, "integer out of range");
		v = v * (uint64_t)base + (uint64_t)h;
	}
	nd->kind = PBTXT_INT;
	nd->mag = v;
	nd->f = neg ? -(double)v : (double)v;
	return 0;
}

static size_t pbtxt__ident_len(const struct parser *p)
{
	size_t i = p->pos;

	while (i < p->len && pbtxt__is_ident_char((unsigned char)p->s[i]))
		i++;
	return i - p->pos;
}

static void pbtxt__skip_bytes(struct parser *p, size_t n)
{
	while (n--)
		pbtxt__advance(p);
}

/* A scalar value: string(s), number, '-' number / inf / nan, identifier. */
static int pbtxt__parse_scalar(struct parser *p, struct pbtxt_node *nd)
{
	char db[16];
	int c = pbtxt__peekc(p);

	nd->vline = p->line;
	nd->vcol = p->col;
	if (c == '"' || c == '\'')
		return pbtxt__parse_string(p, nd);
	if (c == '-') {
		pbtxt__advance(p);
		pbtxt__skip_ws(p);
		c = pbtxt__peekc(p);
		if (pbtxt__is_digit(c) || (c == '.' && pbtxt__is_digit(pbtxt__peekc2(p))))
			return pbtxt__parse_number(p, nd, true);
		if (pbtxt__is_ident_start(c)) {
			size_t n = pbtxt__ident_len(p);
			const char *s = p->s + p->pos;
			if ((n == 3 && !strncasecmp(s, "inf", 3)) ||
			    (n == 8 && !strncasecmp(s, "infinity", 8)) ||
			    (n == 3 && !strncasecmp(s, "nan", 3))) {
				nd->kind = PBTXT_FLOAT;
				nd->neg = true;
				nd->f = (s[0] == 'n' || s[0] == 'N') ? -NAN : -INFINITY;
				nd->str = pbtxt__arena_strndup(p->doc, s, n);
				if (!nd->str)
					return pbtxt__pnomem(p);
				nd->len = n;
				pbtxt__skip_bytes(p, n);
				return 0;
			}
		}
		return perr(p, "expected a number after '-', found %s",
			    pbtxt__describe(p, db, sizeof(db)));
	}
	if (pbtxt__is_digit(c) || (c == '.' && pbtxt__is_digit(pbtxt__peekc2(p))))
		return pbtxt__parse_number(p, nd, false);
	if (pbtxt__is_ident_start(c)) {
		size_t n = pbtxt__ident_len(p);
		if (n > 1024)
			return perr(p, "identifier too long");
		nd->kind = PBTXT_IDENT;
		nd->str = pbtxt__arena_strndup(p->doc, p->s + p->pos, n);
		if (!nd->str)
			return pbtxt__pnomem(p);
		nd->len = n;
		pbtxt__skip_bytes(p, n);
		return 0;
	}
	return perr(p, "expected a value, found %s", pbtxt__describe(p, db, sizeof(db)));
}

/* ------------------------------------------------------------------ */
/* messages */

static int pbtxt__parse_fields(struct parser *p, struct pbtxt_node *msg, int close,
			unsigned depth);

static void pbtxt__append(struct pbtxt_node *msg, struct pbtxt_node **tail, struct pbtxt_node *n)
{
	if (*tail)
		(*tail)->next = n;
	else
		msg->child = n;
	*tail = n;
	msg->nchildren++;
}

/* `{ ... }` or `< ... >`, cursor on the opening bracket. */
static int pbtxt__parse_msg_value(struct parser *p, struct pbtxt_node *nd, unsigned depth)
{
	int open = pbtxt__peekc(p);
	unsigned ol = p->line, oc = p->col;

	nd->kind = PBTXT_MSG;
	nd->vline = ol;
	nd->vcol = oc;
	if (depth + 1 > p->lim.max_depth)
		return perr(p, "messages nested deeper than %u", p->lim.max_depth);
	pbtxt__advance(p);
	if (pbtxt__parse_fields(p, nd, open == '{' ? '}' : '>', depth + 1))
		return p->rc;
	if (pbtxt__peekc(p) < 0)
		return pbtxt__perr_at(p, ol, oc, "'%c' is never closed", open);
	pbtxt__advance(p);
	return 0;
}

/*
 * `[ elem, ... ]`, cursor on '['.  Without a colon before it (`input [ ... ]`,
 * as Triton's own configs write it) protobuf allows only messages in it.
 */
static int pbtxt__parse_list(struct parser *p, struct pbtxt_node *msg,
		      struct pbtxt_node **tail, const char *name,
		      unsigned nl, unsigned nc, unsigned depth, bool msgs_only)
{
	char db[16];
	unsigned ol = p->line, oc = p->col;

	pbtxt__advance(p);             /* '[' */
	pbtxt__skip_ws(p);
	if (pbtxt__peekc(p) == ']') {
		pbtxt__advance(p);
		return 0;
	}
	for (;;) {
		struct pbtxt_node *e = pbtxt__new_node(p, name, nl, nc);
		if (!e)
			return p->rc;
		e->in_list = true;
		int c = pbtxt__peekc(p);
		if (c == '{' || c == '<') {
			if (pbtxt__parse_msg_value(p, e, depth))
				return p->rc;
		} else if (c == '[') {
			return perr(p, "lists cannot be nested");
		} else if (msgs_only) {
			return perr(p, "expected '{' in a list of messages, found %s "
				    "(a list of values needs ':' after the field name)",
				    pbtxt__describe(p, db, sizeof(db)));
		} else if (pbtxt__parse_scalar(p, e)) {
			return p->rc;
		}
		pbtxt__append(msg, tail, e);
		pbtxt__skip_ws(p);
		c = pbtxt__peekc(p);
		if (c == ',') {
			pbtxt__advance(p);
			pbtxt__skip_ws(p);
			continue;
		}
		if (c == ']') {
			pbtxt__advance(p);
			return 0;
		}
		if (c < 0)
			return pbtxt__perr_at(p, ol, oc, "'[' is never closed");
		return perr(p, "expected ',' or ']' in list, found %s",
			    pbtxt__describe(p, db, sizeof(db)));
	}
}

/* A field name: identifier, or [extension.or/any.name]. */
static int pbtxt__parse_name(struct parser *p, const char **name)
{
	char db[16];
	size_t start = p->pos;

	if (pbtxt__peekc(p) == '[') {
		unsigned ol = p->line, oc = p->col;
		pbtxt__advance(p);
		while (pbtxt__is_ident_char(pbtxt__peekc(p)) || pbtxt__peekc(p) == '.' ||
		       pbtxt__peekc(p) == '/')
			pbtxt__advance(p);
		if (pbtxt__peekc(p) != ']')
			return pbtxt__perr_at(p, ol, oc, "malformed extension field name");
		pbtxt__advance(p);
	} else if (pbtxt__is_ident_start(pbtxt__peekc(p))) {
		pbtxt__skip_bytes(p, pbtxt__ident_len(p));
	} else {
		return perr(p, "expected a field name, found %s",
			    pbtxt__describe(p, db, sizeof(db)));
	}
	if (p->pos - start > 1024)
		return perr(p, "field name too long");
	*name = pbtxt__arena_strndup(p->doc, p->s + start, p->pos - start);
	return *name ? 0 : pbtxt__pnomem(p);
}

/* Fields until `close` ('}' or '>', left unconsumed) or end of input (-1). */
static int pbtxt__parse_fields(struct parser *p, struct pbtxt_node *msg, int close,
			unsigned depth)
{
	char db[16];
	struct pbtxt_node *tail = NULL;

	for (;;) {
		pbtxt__skip_ws(p);
		int c = pbtxt__peekc(p);
		if (c < 0 || c == close) {
			return 0;
		}
		if (c == '}' || c == '>')
			return perr(p, "unexpected '%c'", c);

		unsigned nl = p->line, nc = p->col;
		const char *name;
		if (pbtxt__parse_name(p, &name))
			return p->rc;
		pbtxt__skip_ws(p);
		bool colon = false;
		if (pbtxt__peekc(p) == ':') {
			colon = true;
			pbtxt__advance(p);
			pbtxt__skip_ws(p);
		}
		c = pbtxt__peekc(p);
		if (c == '[') {
			if (pbtxt__parse_list(p, msg, &tail, name, nl, nc, depth, !colon))
				return p->rc;
		} else {
			struct pbtxt_node *n = pbtxt__new_node(p, name, nl, nc);
			if (!n)
				return p->rc;
			if (c == '{' || c == '<') {
				if (pbtxt__parse_msg_value(p, n, depth))
					return p->rc;
			} else if (!colon) {
				return perr(p, "expected ':' or '{' after field '%s', found %s",
					    name, pbtxt__describe(p, db, sizeof(db)));
			} else if (pbtxt__parse_scalar(p, n)) {
				return p->rc;
			}
			pbtxt__append(msg, &tail, n);
		}
		pbtxt__skip_ws(p);
		if (pbtxt__peekc(p) == ',' || pbtxt__peekc(p) == ';')
			pbtxt__advance(p);
	}
}

int pbtxt_parse(const char *text, size_t len, const char *file,
	     const struct pbtxt_limits *lim, struct pbtxt_doc **out,
	     char *err, size_t errlen)
{
	struct parser p;
	int rc;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	memset(&p, 0, sizeof(p));
	p.lim.max_input = PBTXT_DEFAULT_MAX_INPUT;
	p.lim.max_depth = PBTXT_DEFAULT_MAX_DEPTH;
	p.lim.max_nodes = PBTXT_DEFAULT_MAX_NODES;
	p.lim.max_string = PBTXT_DEFAULT_MAX_STRING;
	if (lim)
		p.lim = *lim;
	p.err = err;
	p.errlen = errlen;
	if (!file)
		file = "<input>";

	p.doc = calloc(1, sizeof(*p.doc));
	if (!p.doc)
		goto nomem;
	p.doc->file = strdup(file);
	if (!p.doc->file)
		goto nomem;
	p.doc->root.name = "";
	p.doc->root.kind = PBTXT_MSG;
	p.doc->root.line = p.doc->root.col = 1;
	p.doc->root.vline = p.doc->root.vcol = 1;

	if (!text && len)
		len = 0;
	p.s = text ? text : "";
	p.len = len;
	p.line = 1;
	p.col = 1;
	if (len > p.lim.max_input) {
		rc = pbtxt__perr_at(&p, 1, 1, "input larger than %zu bytes",
			     p.lim.max_input);
		goto fail;
	}
	rc = pbtxt__parse_fields(&p, &p.doc->root, -1, 0);
	free(p.sbuf);
	if (rc)
		goto fail;
	*out = p.doc;
	return 0;

nomem:
	rc = FERRY_ENOMEM;
	if (err && errlen)
		snprintf(err, errlen, "%s: out of memory", file ? file : "<input>");
fail:
	pbtxt_free(p.doc);
	return rc;
}

/* ------------------------------------------------------------------ */
/* conversions */

int pbtxt_get_i64(const struct pbtxt_node *n, int64_t *out)
{
	if (n->kind != PBTXT_INT)
		return -EINVAL;
	if (n->neg) {
		if (n->mag > (uint64_t)INT64_MAX + 1)
			return -ERANGE;
		*out = n->mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN
							  : -(int64_t)n->mag;
		return 0;
	}
	if (n->mag > (uint64_t)INT64_MAX)
		return -ERANGE;
	*out = (int64_t)n->mag;
	return 0;
}

int pbtxt_get_u64(const struct pbtxt_node *n, uint64_t *out)
{
	if (n->kind != PBTXT_INT)
		return -EINVAL;
	if (n->neg && n->mag)
		return -ERANGE;
	*out = n->mag;
	return 0;
}

int pbtxt_get_double(const struct pbtxt_node *n, double *out)
{
	switch (n->kind) {
	case PBTXT_INT:
	case PBTXT_FLOAT:
		*out = n->f;
		return 0;
	case PBTXT_IDENT:
		if (!strcasecmp(n->str, "inf") || !strcasecmp(n->str, "infinity")) {
			*out = INFINITY;
			return 0;
		}
		if (!strcasecmp(n->str, "nan")) {
			*out = NAN;
			return 0;
		}
		return -EINVAL;
	default:
		return -EINVAL;
	}
}
