/*
 * Fuzz target for the Authorization header of signed requests
 * (src/net/signed_request.c), as a server parses and checks it.
 *
 * Input layout: text, cut at the first two newlines into the header value,
 * the method and the target (the last two default to POST and /). A NUL
 * byte ends the input early, as it would a C string. The request is
 * checked as one with an empty body to a server whose key is 32 bytes of
 * 0x11, at the header's own time, so a well-signed input reaches a
 * successful verification.
 *
 * Oracles besides "no crash, no leak": a header that parses formats back
 * to exactly the input (one spelling per header), and verifying it with
 * any method and target returns one of the documented codes: SL_EINVAL
 * only for a method or target of the wrong form, and never SL_EAUTH at
 * the header's own time.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/net.h"

#define FUZZ_NAME "request_auth_fuzz"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Cut *p at the next newline; returns the part before it. */
static char *next_line(char **p)
{
	char *start = *p, *nl;

	if (!start)
		return NULL;
	nl = strchr(start, '\n');
	if (nl) {
		*nl = '\0';
		*p = nl + 1;
	} else {
		*p = NULL;
	}
	return start;
}

static int form_ok(const char *method, const char *target)
{
	size_t method_len = strlen(method), target_len = strlen(target);

	if (method_len == 0 || method_len > 16 || target_len == 0 || target_len > 4096 ||
	    target[0] != '/')
		return 0;
	for (size_t i = 0; i < method_len; i++)
		if (method[i] < 'A' || method[i] > 'Z')
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char formatted[SL_REQUEST_AUTH_MAX + 1];
	uint8_t server[SL_ED25519_PK_LEN];
	char *text, *rest, *value, *method, *target;
	sl_request_auth a;
	int rc;

	if (sl_base_init() != SL_OK)
		die("cannot initialise libsodium");
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	rest = text;
	value = next_line(&rest);
	method = next_line(&rest);
	target = next_line(&rest);
	if (!method)
		method = "POST";
	if (!target)
		target = "/";

	if (sl_request_auth_parse(&a, value) != SL_OK)
		goto cleanup;
	if (sl_request_auth_format(&a, formatted, sizeof(formatted)) != SL_OK)
		die("cannot format a parsed header");
	if (strcmp(formatted, value) != 0)
		die("a parsed header formats differently");

	memset(server, 0x11, sizeof(server));
	rc = sl_request_auth_verify(&a, method, target, NULL, 0, server, a.time_s,
	                            SL_REQUEST_WINDOW_S);
	if (form_ok(method, target) ? rc != SL_OK && rc != SL_EVERIFY : rc != SL_EINVAL)
		die("verify returned an unexpected code");
	rc = sl_request_auth_verify(&a, method, target, value, strlen(value), server,
	                            a.time_s ^ UINT64_C(0x8000000000000000), 0);
	if (rc != SL_EAUTH)
		die("a request far off the clock was not refused");
cleanup:
	free(text);
	return 0;
}
