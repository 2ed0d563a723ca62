/* SPDX-License-Identifier: MIT */
/*
 * pbtxt.h - a small, generic parser of the protobuf TEXT format, the format
 * of Triton's config.pbtxt.  Module prefix: pbtxt_.
 *
 * Why our own parser instead of protobuf's C++ TextFormat:
 *  - ferry is a C project.  It uses protobuf-c for the wire format, and
 *    protobuf-c has no text-format support at all;
 *  - wrapping libprotobuf's C++ TextFormat::Parser would pull a C++ runtime,
 *    libprotobuf and generated C++ descriptors of model_config.proto into
 *    the broker for one file read at load time;
 *  - the subset of the format that configs use is small (scalars, strings,
 *    enums, nested messages, lists), so a few hundred lines cover it;
 *  - we want errors as "file:line:col: message" and warnings that point at
 *    the unknown field, and a tree we can walk with our own notion of "known
 *    to Triton but ignored by ferry" versus "unknown";
 *  - the input may be hostile (repository load over gRPC, fuzzing): every
 *    size and the nesting depth are bounded here, in code we control.
 *
 * The parser is schema-less: it builds a tree of fields; the schema (which
 * field is a message, an int, an enum) is applied by the caller
 * (modelcfg.c).  Lists are flattened the way protobuf does it:
 * `dims: [1, 2]` yields two sibling fields named "dims", each marked
 * in_list, exactly as `dims: 1 dims: 2` would (without the mark).
 *
 * Supported syntax: `name: scalar`, `name { ... }`, `name: { ... }`,
 * `name < ... >`, `name: [a, b]`, `name: [{...}, {...}]`, `[ext.name]`
 * field names, double- and single-quoted strings with C escapes (\n \t \r
 * \a \b \f \v \\ \' \" \? \ooo \xHH \uHHHH \UHHHHHHHH) and adjacent-string
 * concatenation, integers (decimal, 0x hex, 0 octal, with an optional
 * '-'), floats (1.5, .5, 1e3, 1.5f, -inf, nan), identifiers, `#` comments
 * and optional ',' or ';' after each field.
 *
 * Positions are 1-based; a column counts bytes (a tab is one column).
 */
#ifndef FERRY_PBTXT_H
#define FERRY_PBTXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pbtxt_kind {
	PBTXT_MSG = 0,     /* nested message: child / nchildren */
	PBTXT_INT,         /* integer: neg + mag */
	PBTXT_FLOAT,       /* floating point: f */
	PBTXT_STRING,      /* quoted string(s): str / len, decoded */
	PBTXT_IDENT,       /* bare identifier (enum value, true, false, inf): str */
};

struct pbtxt_node {
	const char *name;       /* field name; "" for the root */
	enum pbtxt_kind kind;
	bool in_list;           /* came from `name: [ ... ]` */
	bool neg;               /* PBTXT_INT / PBTXT_FLOAT: written with a '-' */
	unsigned line, col;     /* where the field name starts */
	unsigned vline, vcol;   /* where the value starts */
	const char *str;        /* STRING: decoded bytes, NUL-terminated but
				 * may hold NULs (see len); IDENT: the name;
				 * INT / FLOAT: the source text */
	size_t len;             /* bytes in str, without the final NUL */
	uint64_t mag;           /* PBTXT_INT: absolute value */
	double f;               /* PBTXT_FLOAT (and PBTXT_INT, converted) */
	struct pbtxt_node *child;  /* PBTXT_MSG: first field, in source order */
	int nchildren;
	struct pbtxt_node *next;   /* next sibling */
};

/*
 * Bounds on what one document may cost.  A field beyond any of them is a
 * parse error, never a crash or an unbounded allocation.
 */
struct pbtxt_limits {
	size_t max_input;       /* bytes of text */
	unsigned max_depth;     /* message nesting (root = 0) */
	size_t max_nodes;       /* fields in the whole tree */
	size_t max_string;      /* decoded bytes of one string value */
};

#define PBTXT_DEFAULT_MAX_INPUT  (4u << 20)
#define PBTXT_DEFAULT_MAX_DEPTH  32u
#define PBTXT_DEFAULT_MAX_NODES  200000u
#define PBTXT_DEFAULT_MAX_STRING (1u << 20)

struct pbtxt_doc;

/*
 * pbtxt_parse - parse protobuf text into a tree
 *
 * `file` names the source in messages (copied).  `lim` may be NULL for the
 * defaults above.  Returns 0 and *out, which the caller frees with
 * pbtxt_free(); FERRY_CONFIG with "file:line:col: message" in err for a
 * syntax error or a limit; FERRY_ENOMEM.  On failure *out is NULL.
 * err may be NULL; it is always NUL-terminated when errlen > 0.
 */
int pbtxt_parse(const char *text, size_t len, const char *file,
	     const struct pbtxt_limits *lim, struct pbtxt_doc **out,
	     char *err, size_t errlen);

/* Release a document and every node and string in it.  NULL is fine. */
void pbtxt_free(struct pbtxt_doc *doc);

/* The root message (kind PBTXT_MSG, name ""); valid until pbtxt_free(). */
const struct pbtxt_node *pbtxt_root(const struct pbtxt_doc *doc);

/* The file name given to pbtxt_parse(); valid until pbtxt_free(). */
const char *pbtxt_file(const struct pbtxt_doc *doc);

/* Human name of a kind: "message", "integer", "float", "string", "identifier". */
const char *pbtxt_kind_name(enum pbtxt_kind kind);

/*
 * Scalar conversions.  Each returns 0, -EINVAL when the node is of another
 * kind, or -ERANGE when the value does not fit.  pbtxt_get_double accepts
 * integers, floats and the identifiers inf / infinity / nan (any case).
 */
int pbtxt_get_i64(const struct pbtxt_node *n, int64_t *out);
int pbtxt_get_u64(const struct pbtxt_node *n, uint64_t *out);
int pbtxt_get_double(const struct pbtxt_node *n, double *out);

#endif /* FERRY_PBTXT_H */
