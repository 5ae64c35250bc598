/*
 * Metrics: counters, gauges and histograms rendered in the Prometheus text
 * format (version 0.0.4). The registry is a list of families, one per
 * metric name, each holding its metrics (one per label set) in
 * registration order; the families themselves are in the order their names
 * were first registered. A family carries the HELP text and the TYPE, both
 * fixed by its first registration, so a name is printed with one HELP/TYPE
 * block however its label sets were interleaved with other names.
 *
 * Registration and rendering take the registry mutex; updates do not. A
 * metric's value is one _Atomic uint64_t: the count of a counter, or the
 * bits of a double for a gauge (updated by compare-and-swap). A histogram's
 * bucket bounds belong to its family (fixed, like HELP, by the first
 * registration); each of its metrics has one _Atomic count per bucket, not
 * cumulative, the +Inf one last, and its value holds the bits of the sum.
 * Rendering adds the buckets up and prints that total as both the +Inf
 * bucket and _count, so a scrape racing an observation never shows a
 * count that disagrees with the buckets (only the sum may miss that one
 * value). Metrics live until the registry is freed, so callers register
 * once and keep the pointer. A server started by sl_metrics_serve reads the
 * registry and must be stopped before the registry is freed.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/net.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4"
#define METRICS_PATH         "/metrics"
/* Integral gauges below this print as plain integers ("3", not "3e+00");
 * 2^53 keeps every digit exact. */
#define PLAIN_INTEGER_LIMIT 9007199254740992.0

typedef enum metric_kind { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } metric_kind;

typedef struct metric_family metric_family;

struct sl_metric {
	_Atomic uint64_t value;    /* a histogram's: the bits of its sum */
	_Atomic uint64_t *buckets; /* a histogram's: n_bounds + 1 counts */
	metric_family *family;
	char *labels; /* "" when none */
	sl_metric *next;
};

struct metric_family {
	char *name;
	char *help;
	metric_kind kind;
	double *bounds; /* a histogram's upper bounds, increasing; +Inf implied */
	size_t n_bounds;
	sl_metric *first;
	sl_metric *last;
	metric_family *next;
};

struct sl_metrics {
	pthread_mutex_t lock;
	metric_family *first;
	metric_family *last;
};

int sl_metrics_new(sl_metrics **out)
{
	sl_metrics *m = NULL;
	int rc;

	m = sl_calloc(1, sizeof(*m));
	if (!m) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	if (pthread_mutex_init(&m->lock, NULL) != 0) {
		sl_free(m);
		m = NULL;
		rc = sl_error_set(SL_ENOMEM, "metrics: cannot create a mutex");
		goto cleanup;
	}
	*out = m;
	rc = SL_OK;
cleanup:
	return rc;
}

static void metric_free(sl_metric *c)
{
	if (!c)
		return;
	sl_free((void *)c->buckets);
	sl_free(c->labels);
	sl_free(c);
}

static void family_free(metric_family *f)
{
	if (!f)
		return;
	sl_free(f->name);
	sl_free(f->help);
	sl_free(f->bounds);
	sl_free(f);
}

void sl_metrics_free(sl_metrics *m)
{
	metric_family *f, *next_family;
	sl_metric *c, *next_metric;

	if (!m)
		return;
	for (f = m->first; f; f = next_family) {
		next_family = f->next;
		for (c = f->first; c; c = next_metric) {
			next_metric = c->next;
			metric_free(c);
		}
		family_free(f);
	}
	pthread_mutex_destroy(&m->lock);
	sl_free(m);
}

/* --------------------------------------------------------- registration */

static metric_family *find_family(const sl_metrics *m, const char *name)
{
	for (metric_family *f = m->first; f; f = f->next) {
		if (strcmp(f->name, name) == 0)
			return f;
	}
	return NULL;
}

static sl_metric *find_metric(const metric_family *f, const char *labels)
{
	for (sl_metric *c = f->first; c; c = c->next) {
		if (strcmp(c->labels, labels) == 0)
			return c;
	}
	return NULL;
}

/* What a histogram's family is made with; NULL for the other kinds. */
typedef struct histogram_bounds {
	const double *bounds;
	size_t n_bounds;
} histogram_bounds;

/* A new family, not yet linked into the registry. */
static int family_new(metric_family **out, const char *name, const char *help, metric_kind kind,
                      const histogram_bounds *hb)
{
	metric_family *f;
	int rc;

	f = sl_calloc(1, sizeof(*f));
	if (!f) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	f->kind = kind;
	f->name = sl_strdup(name);
	f->help = sl_strdup(help ? help : "");
	if (!f->name || !f->help) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	if (hb && hb->n_bounds > 0) {
		f->bounds = sl_malloc(hb->n_bounds * sizeof(*f->bounds));
		if (!f->bounds) {
			rc = SL_ENOMEM;
			goto cleanup;
		}
		memcpy(f->bounds, hb->bounds, hb->n_bounds * sizeof(*f->bounds));
		f->n_bounds = hb->n_bounds;
	}
	*out = f;
	f = NULL;
	rc = SL_OK;
cleanup:
	family_free(f);
	return rc;
}

/* Find or add name{labels}; on failure the registry is unchanged. hb is
 * the bounds of a histogram (kind KIND_HISTOGRAM), else NULL. */
static int register_metric(sl_metric **out, sl_metrics *m, const char *name, const char *labels,
                           const char *help, metric_kind kind, const histogram_bounds *hb)
{
	metric_family *f, *new_family = NULL;
	sl_metric *c = NULL;
	int rc;

	if (!m || !name || !*name) {
		rc = sl_error_set(SL_EINVAL, "metrics: a metric needs a registry and a name");
		return rc;
	}
	if (!labels)
		labels = "";
	pthread_mutex_lock(&m->lock);
	f = find_family(m, name);
	if (f) {
		/* Counters and gauges stand in for each other (add and set work
		 * on both); a histogram is observed, so it takes no other. */
		if ((f->kind == KIND_HISTOGRAM) != (kind == KIND_HISTOGRAM)) {
			rc = sl_error_set(SL_EINVAL, "metrics: %s is %sa histogram", name,
			                  f->kind == KIND_HISTOGRAM ? "" : "not ");
			goto cleanup;
		}
		c = find_metric(f, labels);
		if (c) {
			*out = c;
			c = NULL;
			rc = SL_OK;
			goto cleanup;
		}
	} else {
		rc = family_new(&new_family, name, help, kind, hb);
		if (rc != SL_OK)
			goto cleanup;
		f = new_family;
	}
	c = sl_calloc(1, sizeof(*c));
	if (!c) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	c->labels = sl_strdup(labels);
	if (!c->labels) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	if (f->kind == KIND_HISTOGRAM) {
		c->buckets = sl_calloc(f->n_bounds + 1, sizeof(*c->buckets));
		if (!c->buckets) {
			rc = SL_ENOMEM;
			goto cleanup;
		}
		for (size_t i = 0; i <= f->n_bounds; i++)
			atomic_init(&c->buckets[i], 0);
	}
	c->family = f;
	/* A gauge of 0.0, a counter of 0 and a sum of 0.0 are all-zero bits. */
	atomic_init(&c->value, 0);
	if (new_family) {
		if (m->last)
			m->last->next = new_family;
		else
			m->first = new_family;
		m->last = new_family;
		new_family = NULL;
	}
	if (f->last)
		f->last->next = c;
	else
		f->first = c;
	f->last = c;
	*out = c;
	c = NULL;
	rc = SL_OK;
cleanup:
	pthread_mutex_unlock(&m->lock);
	metric_free(c);
	family_free(new_family);
	return rc;
}

sl_metric *sl_metrics_counter(sl_metrics *m, const char *name, const char *labels, const char *help)
{
	sl_metric *c = NULL;

	if (register_metric(&c, m, name, labels, help, KIND_COUNTER, NULL) != SL_OK)
		return NULL;
	return c;
}

sl_metric *sl_metrics_gauge(sl_metrics *m, const char *name, const char *labels, const char *help)
{
	sl_metric *g = NULL;

	if (register_metric(&g, m, name, labels, help, KIND_GAUGE, NULL) != SL_OK)
		return NULL;
	return g;
}

sl_metric *sl_metrics_histogram(sl_metrics *m, const char *name, const char *labels,
                                const char *help, const double *bounds, size_t n_bounds)
{
	histogram_bounds hb = {bounds, n_bounds};
	const char *shown = name ? name : "(no name)";
	sl_metric *h = NULL;

	if (n_bounds > SL_METRICS_MAX_BOUNDS) {
		sl_error_set(SL_ETOOLARGE, "metrics: %s: %zu bucket bounds, at most %d", shown,
		             n_bounds, SL_METRICS_MAX_BOUNDS);
		return NULL;
	}
	if (n_bounds > 0 && !bounds) {
		sl_error_set(SL_EINVAL, "metrics: %s: no bucket bounds", shown);
		return NULL;
	}
	for (size_t i = 0; i < n_bounds; i++) {
		/* +Inf is always the last bucket, so it is not a bound given. */
		if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1]))) {
			sl_error_set(SL_EINVAL,
			             "metrics: %s: bucket bounds must be finite and increasing",
			             shown);
			return NULL;
		}
	}
	if (register_metric(&h, m, name, labels, help, KIND_HISTOGRAM, &hb) != SL_OK)
		return NULL;
	return h;
}

/* --------------------------------------------------------------- values */

static double bits_to_double(uint64_t bits)
{
	double v;
	memcpy(&v, &bits, sizeof(v));
	return v;
}

static uint64_t double_to_bits(double v)
{
	uint64_t bits;
	memcpy(&bits, &v, sizeof(bits));
	return bits;
}

void sl_metric_add(sl_metric *c, uint64_t n)
{
	uint64_t old_bits, new_bits;

	if (!c || c->family->kind == KIND_HISTOGRAM)
		return;
	if (c->family->kind == KIND_COUNTER) {
		atomic_fetch_add(&c->value, n);
		return;
	}
	/* A gauge registered under a counter's call still adds. */
	old_bits = atomic_load(&c->value);
	do {
		new_bits = double_to_bits(bits_to_double(old_bits) + (double)n);
	} while (!atomic_compare_exchange_weak(&c->value, &old_bits, new_bits));
}

void sl_metric_set(sl_metric *g, double v)
{
	if (!g || g->family->kind == KIND_HISTOGRAM)
		return;
	if (g->family->kind == KIND_GAUGE) {
		atomic_store(&g->value, double_to_bits(v));
		return;
	}
	/* Setting a counter: clamp to what a counter can hold. */
	if (!(v > 0))
		atomic_store(&g->value, 0);
	else if (v >= 18446744073709551616.0)
		atomic_store(&g->value, UINT64_MAX);
	else
		atomic_store(&g->value, (uint64_t)v);
}

void sl_metric_observe(sl_metric *h, double v)
{
	const metric_family *f;
	uint64_t old_bits, new_bits;
	size_t lo = 0, hi;

	if (!h || h->family->kind != KIND_HISTOGRAM || isnan(v))
		return;
	f = h->family;
	/* The first bucket whose bound is >= v (le is inclusive); the +Inf
	 * one, index n_bounds, when none is. */
	hi = f->n_bounds;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (f->bounds[mid] < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	atomic_fetch_add(&h->buckets[lo], 1);
	old_bits = atomic_load(&h->value);
	do {
		new_bits = double_to_bits(bits_to_double(old_bits) + v);
	} while (!atomic_compare_exchange_weak(&h->value, &old_bits, new_bits));
}

/* Observations in all of a histogram's buckets. */
static uint64_t histogram_count(const sl_metric *h)
{
	uint64_t total = 0;

	for (size_t i = 0; i <= h->family->n_bounds; i++)
		total += atomic_load(&h->buckets[i]);
	return total;
}

double sl_metric_value(const sl_metric *m)
{
	uint64_t bits;

	if (!m)
		return 0.0;
	if (m->family->kind == KIND_HISTOGRAM)
		return (double)histogram_count(m);
	bits = atomic_load(&((sl_metric *)m)->value);
	if (m->family->kind == KIND_COUNTER)
		return (double)bits;
	return bits_to_double(bits);
}

/* ------------------------------------------------------------ rendering */

/* HELP text escapes backslash and newline (the format's only rule). */
static int append_help(sl_buf *out, const char *help)
{
	const char *run = help;
	const char *p;
	int rc = SL_OK;

	for (p = help; *p; p++) {
		if (*p != '\\' && *p != '\n')
			continue;
		rc = sl_buf_append(out, run, (size_t)(p - run));
		if (rc == SL_OK)
			rc = sl_buf_append_str(out, *p == '\\' ? "\\\\" : "\\n");
		if (rc != SL_OK)
			goto cleanup;
		run = p + 1;
	}
	rc = sl_buf_append(out, run, (size_t)(p - run));
cleanup:
	return rc;
}

/* The shortest of %.15g..%.17g that reads back as v; integers in plain. */
static void format_gauge(char *out, size_t cap, double v)
{
	if (isnan(v)) {
		snprintf(out, cap, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, cap, "%s", v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (v > -PLAIN_INTEGER_LIMIT && v < PLAIN_INTEGER_LIMIT && v == (double)(int64_t)v) {
		snprintf(out, cap, "%.0f", v == 0 ? 0.0 : v);
		return;
	}
	for (int precision = 15; precision <= 17; precision++) {
		snprintf(out, cap, "%.*g", precision, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

/* name_bucket{labels,le="..."} lines, cumulative, then _sum and _count;
 * +Inf and _count are the same total of the buckets as read. */
static int render_histogram(sl_buf *out, const metric_family *f, const sl_metric *h)
{
	const char *sep = h->labels[0] ? "," : "";
	char bound[64], sum[64];
	uint64_t cumulative = 0;
	int rc = SL_OK;

	for (size_t i = 0; i <= f->n_bounds && rc == SL_OK; i++) {
		cumulative += atomic_load(&h->buckets[i]);
		if (i < f->n_bounds)
			format_gauge(bound, sizeof(bound), f->bounds[i]);
		else
			snprintf(bound, sizeof(bound), "+Inf");
		rc = sl_buf_printf(out, "%s_bucket{%s%sle=\"%s\"} %" PRIu64 "\n", f->name,
		                   h->labels, sep, bound, cumulative);
	}
	format_gauge(sum, sizeof(sum), bits_to_double(atomic_load(&((sl_metric *)h)->value)));
	if (rc == SL_OK && h->labels[0])
		rc = sl_buf_printf(out, "%s_sum{%s} %s\n%s_count{%s} %" PRIu64 "\n", f->name,
		                   h->labels, sum, f->name, h->labels, cumulative);
	else if (rc == SL_OK)
		rc = sl_buf_printf(out, "%s_sum %s\n%s_count %" PRIu64 "\n", f->name, sum, f->name,
		                   cumulative);
	return rc;
}

static const char *kind_name(metric_kind kind)
{
	switch (kind) {
	case KIND_COUNTER:
		return "counter";
	case KIND_GAUGE:
		return "gauge";
	case KIND_HISTOGRAM:
		return "histogram";
	}
	return "untyped";
}

static int render_family(sl_buf *out, const metric_family *f)
{
	char value[64];
	uint64_t bits;
	int rc;

	rc = sl_buf_printf(out, "# HELP %s ", f->name);
	if (rc == SL_OK)
		rc = append_help(out, f->help);
	if (rc == SL_OK)
		rc = sl_buf_printf(out, "\n# TYPE %s %s\n", f->name, kind_name(f->kind));
	for (const sl_metric *c = f->first; c && rc == SL_OK; c = c->next) {
		if (f->kind == KIND_HISTOGRAM) {
			rc = render_histogram(out, f, c);
			continue;
		}
		bits = atomic_load(&((sl_metric *)c)->value);
		if (f->kind == KIND_COUNTER)
			snprintf(value, sizeof(value), "%" PRIu64, bits);
		else
			format_gauge(value, sizeof(value), bits_to_double(bits));
		if (c->labels[0])
			rc = sl_buf_printf(out, "%s{%s} %s\n", f->name, c->labels, value);
		else
			rc = sl_buf_printf(out, "%s %s\n", f->name, value);
	}
	return rc;
}

int sl_metrics_render(sl_metrics *m, sl_buf *out)
{
	size_t old_len;
	int rc = SL_OK;

	if (!m || !out)
		return sl_error_set(SL_EINVAL, "metrics: render needs a registry and a buffer");
	old_len = out->len;
	pthread_mutex_lock(&m->lock);
	for (const metric_family *f = m->first; f && rc == SL_OK; f = f->next)
		rc = render_family(out, f);
	pthread_mutex_unlock(&m->lock);
	if (rc != SL_OK && out->data) {
		/* All or nothing: drop the partial text. */
		out->len = old_len;
		out->data[old_len] = '\0';
	}
	return rc;
}

/* --------------------------------------------------------------- server */

static void serve_metrics(void *ctx, const sl_http_request *req, sl_http_response *resp)
{
	sl_metrics *m = ctx;

	if (strcmp(req->path, METRICS_PATH) != 0) {
		sl_http_response_error(resp, 404, "not_found", "no such path: %s (try %s)",
		                       req->path, METRICS_PATH);
		return;
	}
	if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
		sl_http_response_error(resp, 405, "method_not_allowed",
		                       "%s is not allowed on %s, only GET", req->method,
		                       METRICS_PATH);
		return;
	}
	if (sl_metrics_render(m, &resp->body) != SL_OK) {
		sl_http_response_error(resp, 500, "internal", "cannot render metrics: %s",
		                       sl_error_last()->message);
		return;
	}
	resp->status = 200;
	resp->content_type = METRICS_CONTENT_TYPE;
}

int sl_metrics_serve(sl_http_server **out, sl_metrics *m, const char *addr, uint16_t port)
{
	sl_http_server_options o;
	int rc;

	if (!m) {
		rc = sl_error_set(SL_EINVAL, "metrics: serve needs a registry");
		goto cleanup;
	}
	sl_http_server_options_init(&o);
	if (addr)
		o.listen_addr = addr;
	o.port = port;
	o.threads = 1;
	/* Scrapes carry no body; a stray one is refused early. */
	o.max_request = 64 * 1024;
	rc = sl_http_server_start(out, &o, serve_metrics, m);
	if (rc != SL_OK)
		sl_error_wrap("metrics server");
cleanup:
	return rc;
}
