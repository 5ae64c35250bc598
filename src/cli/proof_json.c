/*
 * Key proofs as JSON (see proof_json.h for the shape): writing one from an
 * sl_key_proof, reading one back strictly, and checking what it proves.
 *
 * Reading separates form from meaning. cli_proof_from_json accepts only a
 * well-formed file (capped size, no duplicate or unknown fields, every
 * field present with its type and hex of the right length) and reports the
 * first problem as SL_ECORRUPT. cli_proof_check then decides whether that
 * file proves its key: the element must decode to a set or update of
 * exactly that key, and the MMR range proof must rebuild the root from it
 * at leaf `loc` of `size` leaves. Nothing in the file is trusted before it
 * is checked, and every path frees what it allocated.
 */
#include <stdarg.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/proof_json.h"
#include "sluice/mmr.h"

static const char *const proof_fields[] = {"ns",   "key",     "loc",    "size",
                                           "root", "element", "digests"};

void cli_proof_init(cli_proof *p)
{
	p->ns = NULL;
	p->key = NULL;
	p->key_len = 0;
	sl_key_proof_init(&p->kp);
	/* Our own cap, whatever the store's default is. */
	sl_buf_free(&p->kp.element);
	sl_buf_init(&p->kp.element, CLI_PROOF_ELEMENT_MAX);
}

void cli_proof_free(cli_proof *p)
{
	if (!p)
		return;
	sl_free(p->ns);
	sl_free(p->key);
	p->ns = NULL;
	p->key = NULL;
	p->key_len = 0;
	sl_key_proof_free(&p->kp);
}

/* ---------------------------------------------------------------- writing */

int cli_proof_to_json(json_t **out, const char *ns, const char *key, size_t key_len,
                      const sl_key_proof *kp)
{
	json_t *obj = NULL, *digests = NULL, *jkey = NULL;
	char *element = NULL;
	int rc;

	/* The file has one "size" for both. */
	if (kp->proof.leaves != kp->target.size) {
		rc = sl_error_set(SL_EINTERNAL, "proof is for %llu leaves, the commit has %llu",
		                  (unsigned long long)kp->proof.leaves,
		                  (unsigned long long)kp->target.size);
		goto cleanup;
	}
	jkey = json_stringn(key, key_len);
	if (!jkey) {
		rc = sl_error_set(SL_EINVAL, "key is not UTF-8, so it cannot be written as JSON");
		goto cleanup;
	}
	obj = json_object();
	digests = json_array();
	element = cli_hex_new(kp->element.data, kp->element.len);
	if (!obj || !digests || !element)
		goto nomem;
	for (size_t i = 0; i < kp->proof.n_digests; i++) {
		sl_digest_hex hex = sl_digest_to_hex(&kp->proof.digests[i]);

		if (json_array_append_new(digests, json_string(hex.s)) != 0)
			goto nomem;
	}
	if (cli_json_set(obj, "ns", json_string(ns)) != 0)
		goto nomem;
	/* cli_json_set takes the value whether or not it succeeds. */
	rc = cli_json_set(obj, "key", jkey);
	jkey = NULL;
	if (rc != 0)
		goto nomem;
	if (cli_json_set(obj, "loc", cli_json_u64(kp->loc)) != 0 ||
	    cli_json_set(obj, "size", cli_json_u64(kp->target.size)) != 0 ||
	    cli_json_set(obj, "root", json_string(sl_digest_to_hex(&kp->target.root).s)) != 0 ||
	    cli_json_set(obj, "element", json_string(element)) != 0)
		goto nomem;
	rc = cli_json_set(obj, "digests", digests);
	digests = NULL;
	if (rc != 0)
		goto nomem;
	*out = obj;
	obj = NULL;
	rc = SL_OK;
	goto cleanup;
nomem:
	rc = sl_error_set(SL_ENOMEM, "out of memory building the proof JSON");
cleanup:
	json_decref(jkey);
	json_decref(digests);
	json_decref(obj);
	sl_free(element);
	return rc;
}

/* ---------------------------------------------------------------- reading */

__attribute__((format(printf, 1, 2))) static int malformed(const char *fmt, ...);

/* Record SL_ECORRUPT; the arguments may include the current message. */
static int malformed(const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = sl_error_setv(SL_ECORRUPT, fmt, ap);
	va_end(ap);
	return rc;
}

static int known_field(const char *name)
{
	for (size_t i = 0; i < sizeof(proof_fields) / sizeof(proof_fields[0]); i++) {
		if (strcmp(proof_fields[i], name) == 0)
			return 1;
	}
	return 0;
}

static int field(json_t **out, json_t *obj, const char *name)
{
	json_t *v = json_object_get(obj, name);

	if (!v)
		return malformed("field '%s' is missing", name);
	*out = v;
	return SL_OK;
}

static int string_field(const char **out, size_t *len_out, json_t *obj, const char *name)
{
	json_t *v = NULL;
	int rc = field(&v, obj, name);

	if (rc != SL_OK)
		return rc;
	if (!json_is_string(v))
		return malformed("field '%s' must be a string", name);
	*out = json_string_value(v);
	*len_out = json_string_length(v);
	return SL_OK;
}

static int u64_field(uint64_t *out, json_t *obj, const char *name)
{
	json_t *v = NULL;
	int rc = field(&v, obj, name);

	if (rc != SL_OK)
		return rc;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return malformed("field '%s' must be a non-negative integer", name);
	*out = (uint64_t)json_integer_value(v);
	return SL_OK;
}

/* A JSON string of exactly 64 hex characters; what names it in messages. */
static int digest_value(sl_digest *out, json_t *v, const char *what)
{
	if (!json_is_string(v) || json_string_length(v) != 2 * SL_DIGEST_LEN)
		return malformed("%s must be a string of %d hex characters", what,
		                 2 * SL_DIGEST_LEN);
	if (sl_digest_from_hex(out, json_string_value(v)) != SL_OK)
		return malformed("%s: %s", what, sl_error_last()->message);
	return SL_OK;
}

static int parse_digests(sl_mmr_proof *out, json_t *obj)
{
	json_t *array = NULL;
	size_t n;
	int rc = field(&array, obj, "digests");

	if (rc != SL_OK)
		return rc;
	if (!json_is_array(array))
		return malformed("field 'digests' must be an array");
	n = json_array_size(array);
	if (n > SL_MMR_PROOF_MAX_DIGESTS)
		return malformed("field 'digests' has %zu entries, at most %d are allowed", n,
		                 SL_MMR_PROOF_MAX_DIGESTS);
	if (n > 0) {
		out->digests = sl_calloc(n, sizeof(sl_digest));
		if (!out->digests)
			return SL_ENOMEM;
	}
	out->n_digests = n;
	for (size_t i = 0; i < n; i++) {
		char what[32];

		snprintf(what, sizeof(what), "digests[%zu]", i);
		rc = digest_value(&out->digests[i], json_array_get(array, i), what);
		if (rc != SL_OK)
			return rc;
	}
	return SL_OK;
}

static int parse_element(sl_buf *out, json_t *obj)
{
	uint8_t bytes[CLI_PROOF_ELEMENT_MAX];
	const char *hex = NULL;
	size_t hex_len = 0, n;
	int rc = string_field(&hex, &hex_len, obj, "element");

	if (rc != SL_OK)
		return rc;
	if (hex_len == 0)
		return malformed("field 'element' is empty");
	if (hex_len > 2 * sizeof(bytes))
		return malformed("field 'element' is longer than %zu hex characters",
		                 2 * sizeof(bytes));
	if (sl_hex_decode(bytes, sizeof(bytes), &n, hex, hex_len) != SL_OK)
		return malformed("field 'element': %s", sl_error_last()->message);
	return sl_buf_set(out, bytes, n);
}

/* Fill p from the parsed object; p owns what it got even on failure. */
static int parse_object(cli_proof *p, json_t *obj)
{
	const char *ns = NULL, *key = NULL, *name;
	size_t ns_len = 0, key_len = 0;
	json_t *v, *root = NULL;
	char shown[80];
	int rc;

	if (!json_is_object(obj))
		return malformed("the top level must be a JSON object");
	json_object_foreach(obj, name, v)
	{
		if (!known_field(name))
			return malformed("unknown field '%s'",
			                 cli_escape(shown, sizeof(shown), name, strlen(name)));
	}
	if ((rc = string_field(&ns, &ns_len, obj, "ns")) != SL_OK)
		return rc;
	if (sl_ns_name_validate(ns) != SL_OK)
		return malformed("field 'ns': %s", sl_error_last()->message);
	if ((rc = string_field(&key, &key_len, obj, "key")) != SL_OK)
		return rc;
	if (sl_key_validate(key, key_len) != SL_OK)
		return malformed("field 'key': %s", sl_error_last()->message);
	if ((rc = u64_field(&p->kp.loc, obj, "loc")) != SL_OK ||
	    (rc = u64_field(&p->kp.target.size, obj, "size")) != SL_OK)
		return rc;
	if ((rc = field(&root, obj, "root")) != SL_OK ||
	    (rc = digest_value(&p->kp.target.root, root, "field 'root'")) != SL_OK)
		return rc;
	if ((rc = parse_element(&p->kp.element, obj)) != SL_OK)
		return rc;
	if ((rc = parse_digests(&p->kp.proof, obj)) != SL_OK)
		return rc;
	p->kp.proof.leaves = p->kp.target.size;
	p->kp.target.floor = 0;
	p->ns = sl_strndup(ns, ns_len);
	p->key = sl_strndup(key, key_len);
	if (!p->ns || !p->key)
		return SL_ENOMEM;
	p->key_len = key_len;
	return SL_OK;
}

int cli_proof_from_json(cli_proof *out, const char *json, size_t len)
{
	cli_proof p;
	json_error_t jerr;
	json_t *obj = NULL;
	int rc;

	cli_proof_init(&p);
	if (len > CLI_PROOF_JSON_MAX) {
		rc = sl_error_set(SL_ETOOLARGE, "larger than %d bytes", CLI_PROOF_JSON_MAX);
		goto cleanup;
	}
	if (len == 0) {
		rc = malformed("empty input");
		goto cleanup;
	}
	/* Strings with NUL (\u0000) are rejected by default. */
	obj = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!obj) {
		rc = malformed("%s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
		goto cleanup;
	}
	rc = parse_object(&p, obj);
	if (rc != SL_OK)
		goto cleanup;
	*out = p;
	cli_proof_init(&p);
cleanup:
	cli_proof_free(&p);
	json_decref(obj);
	return rc;
}

/* --------------------------------------------------------------- checking */

__attribute__((format(printf, 4, 5))) static cli_proof_result
verdict(cli_proof_result result, char *why, size_t why_cap, const char *fmt, ...);

static cli_proof_result verdict(cli_proof_result result, char *why, size_t why_cap, const char *fmt,
                                ...)
{
	va_list ap;

	if (why && why_cap > 0) {
		va_start(ap, fmt);
		vsnprintf(why, why_cap, fmt, ap);
		va_end(ap);
	}
	return result;
}

cli_proof_result cli_proof_check(const char *json, size_t len, char *why, size_t why_cap)
{
	cli_proof p;
	cli_proof_result result;
	sl_op op;
	sl_bytes element;
	int rc;

	cli_proof_init(&p);
	rc = cli_proof_from_json(&p, json, len);
	if (rc == SL_ENOMEM) {
		result = verdict(CLI_PROOF_ERROR, why, why_cap, "%s", sl_error_last()->message);
		goto cleanup;
	}
	if (rc != SL_OK) {
		result = verdict(CLI_PROOF_MALFORMED, why, why_cap, "malformed proof file: %s",
		                 sl_error_last()->message);
		goto cleanup;
	}
	if (p.kp.target.size > SL_MMR_MAX_LEAVES) {
		result = verdict(CLI_PROOF_INVALID, why, why_cap,
		                 "size %llu is past the largest MMR",
		                 (unsigned long long)p.kp.target.size);
		goto cleanup;
	}
	if (p.kp.loc >= p.kp.target.size) {
		result =
		        verdict(CLI_PROOF_INVALID, why, why_cap, "loc %llu is not below size %llu",
		                (unsigned long long)p.kp.loc, (unsigned long long)p.kp.target.size);
		goto cleanup;
	}
	if (sl_op_decode(&op, p.kp.element.data, p.kp.element.len) != SL_OK) {
		result = verdict(CLI_PROOF_INVALID, why, why_cap, "element: %s",
		                 sl_error_last()->message);
		goto cleanup;
	}
	if (op.type != SL_OP_SET && op.type != SL_OP_UPDATE) {
		result = verdict(CLI_PROOF_INVALID, why, why_cap,
		                 "element is a %s operation, not a set or update",
		                 sl_op_type_name(op.type));
		goto cleanup;
	}
	if (op.key_len != p.key_len || memcmp(op.key, p.key, p.key_len) != 0) {
		result = verdict(CLI_PROOF_INVALID, why, why_cap,
		                 "element is an operation on another key");
		goto cleanup;
	}
	element.data = p.kp.element.data;
	element.len = p.kp.element.len;
	rc = sl_mmr_range_verify(&p.kp.proof, p.kp.loc, &element, 1, &p.kp.target.root);
	if (rc == SL_ENOMEM) {
		result = verdict(CLI_PROOF_ERROR, why, why_cap, "%s", sl_error_last()->message);
		goto cleanup;
	}
	if (rc != SL_OK) {
		result = verdict(CLI_PROOF_INVALID, why, why_cap, "%s", sl_error_last()->message);
		goto cleanup;
	}
	result = verdict(CLI_PROOF_VALID, why, why_cap, "valid");
cleanup:
	cli_proof_free(&p);
	return result;
}
