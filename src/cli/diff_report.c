/*
 * The report of a diff as `sluice diff` and `sluice engine diff` print it:
 * the keys only here, only there and different, then the traffic; with
 * --json one object of the same fields for both.
 */
#include <string.h>

#include "cli/cli.h"
#include "cli/diff_report.h"

static json_t *json_keys(const sl_diff_keys *k)
{
	json_t *list = json_array();
	for (size_t i = 0; list && i < k->n; i++)
		if (json_array_append_new(list, json_stringn(k->items[i].key, k->items[i].len)) !=
		    0) {
			json_decref(list);
			return NULL;
		}
	return list;
}

int cli_diff_print_json(const char *name, const sl_diff_report *r, int pull)
{
	json_t *o = json_object();
	if (!o || cli_json_set(o, "only_local", json_keys(&r->only_local)) != 0 ||
	    cli_json_set(o, "only_remote", json_keys(&r->only_remote)) != 0 ||
	    cli_json_set(o, "different", json_keys(&r->different)) != 0 ||
	    cli_json_set(o, "round_trips", cli_json_u64(r->round_trips)) != 0 ||
	    cli_json_set(o, "bytes_sent", cli_json_u64(r->bytes_sent)) != 0 ||
	    cli_json_set(o, "bytes_received", cli_json_u64(r->bytes_received)) != 0 ||
	    cli_json_set(o, "vanished", cli_json_u64(r->vanished)) != 0 ||
	    (pull && (cli_json_set(o, "pulled", cli_json_u64(r->pulled)) != 0 ||
	              cli_json_set(o, "conflicts", json_keys(&r->conflicts)) != 0))) {
		json_decref(o);
		o = NULL;
	}
	return cli_json_print(name, o);
}

static void print_keys(const char *title, const sl_diff_keys *k)
{
	char shown[SL_KEY_MAX * 4 + 8];
	if (k->n == 0)
		return;
	printf("%s (%zu):\n", title, k->n);
	for (size_t i = 0; i < k->n; i++)
		printf("  %s\n",
		       cli_escape(shown, sizeof(shown), k->items[i].key, k->items[i].len));
}

void cli_diff_print_text(const char *ns, const char *other, const sl_diff_report *r, int pull)
{
	char title[800];
	snprintf(title, sizeof(title), "only in %s", ns);
	print_keys(title, &r->only_local);
	snprintf(title, sizeof(title), "only in %s", other);
	print_keys(title, &r->only_remote);
	print_keys("different", &r->different);
	if (r->only_local.n + r->only_remote.n + r->different.n == 0)
		printf("%s and %s hold the same keys and values\n", ns, other);
	if (pull) {
		print_keys("conflicts, left as they are (the namespace is immutable)",
		           &r->conflicts);
		printf("pulled %llu keys into %s\n", (unsigned long long)r->pulled, ns);
	}
	if (r->vanished)
		printf("%llu of %s's items changed while the diff ran; run it again\n",
		       (unsigned long long)r->vanished, other);
	printf("%llu round trips, %llu bytes sent, %llu bytes received\n",
	       (unsigned long long)r->round_trips, (unsigned long long)r->bytes_sent,
	       (unsigned long long)r->bytes_received);
}
