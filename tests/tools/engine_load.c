/*
 * The engine's fault-test harness: writes to `sluice engine serve` over
 * HTTP and records every acknowledged write, then checks them all.
 *
 *   engine_load load URL LOG [--threads N] [--keys K] [--seconds S]
 *                            [--ack memory|local|l3] [--value-size B] [--deletes]
 *                            [--give-up-ms MS]
 *       N threads PUT (and with --deletes sometimes DELETE) keys
 *       t<thread>/k<n> until S seconds pass or the server stops answering
 *       for MS milliseconds (default 5000). Every 200 answer appends "key version hash\n" to LOG
 *       (hash: FNV-1a of the value written, "-" for a delete), flushed at
 *       once, so a line exists for every acknowledged write. 429 and 503
 *       are counted and retried after a pause; they acknowledge nothing.
 *   engine_load check URL LOG
 *       For each key, the newest acknowledged write (the last line of the
 *       key: a key belongs to one thread, which writes it in order) must
 *       be there at its version or a newer one; at its version, with its
 *       bytes (or absent, for a delete). Prints the counts; exits 1 if
 *       any acknowledged write is missing or wrong, 2 on a usage error.
 *
 * Counts go to stdout as `acked=N busy=N errors=N p50_ms=X p99_ms=X
 * max_ms=X` (the latency of the acknowledged writes) and
 * `checked=N missing=N newer=N`.
 */
#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct opts {
	const char *url, *log, *ack;
	int threads, keys, seconds, value_size, deletes, give_up_ms;
} opts;

static FILE *g_log;
static pthread_mutex_t g_log_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_ulong g_acked, g_busy, g_errors;

#define LATENCIES_MAX (1u << 20) /* kept for the percentiles; later ones not */
static double *g_latency;
static atomic_ulong g_n_latency;

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double percentile(double *v, unsigned long n, double p)
{
	return n ? v[(unsigned long)(p * (double)(n - 1))] * 1000.0 : 0;
}

static uint64_t fnv(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * UINT64_C(0x100000001b3);
	return h;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define BODY_MAX (2u << 20) /* more than any value the harness writes */

typedef struct answer {
	char *body; /* BODY_MAX + 1 bytes, NUL-terminated */
	size_t len;
	uint64_t version; /* Sluice-Version header */
} answer;

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
	answer *a = ctx;
	size_t len = size * n, room = BODY_MAX - a->len;
	memcpy(a->body + a->len, p, len < room ? len : room);
	a->len += len < room ? len : room;
	a->body[a->len] = '\0';
	return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ctx)
{
	answer *a = ctx;
	size_t len = size * n;
	if (len > 16 && strncasecmp(p, "Sluice-Version:", 15) == 0)
		a->version = strtoull(p + 15, NULL, 10);
	return len;
}

/* One request; the HTTP status, or -1 when no answer came. */
static long request(CURL *c, const char *method, const char *url, const char *ack, const void *body,
                    size_t len, answer *a)
{
	struct curl_slist *h = NULL;
	char ack_header[64];
	if (a->body == NULL && (a->body = malloc(BODY_MAX + 1)) == NULL)
		return -1;
	a->len = 0;
	a->version = 0;
	a->body[0] = '\0';
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
	if (ack) {
		snprintf(ack_header, sizeof(ack_header), "Sluice-Ack: %s", ack);
		h = curl_slist_append(h, ack_header);
	}
	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
	}
	CURLcode rc = curl_easy_perform(c);
	long status = -1;
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	return status;
}

typedef struct worker {
	const opts *o;
	int id;
} worker;

static void fill_value(char *v, int size, const char *key, unsigned long seq)
{
	char unit[128];
	int n = snprintf(unit, sizeof(unit), "%s#%lu|", key, seq);
	for (int i = 0; i < size; i++)
		v[i] = unit[i % n];
}

static void *load_main(void *arg)
{
	worker *w = arg;
	const opts *o = w->o;
	CURL *c = curl_easy_init();
	char *value = malloc((size_t)o->value_size + 1), key[64], url[1024];
	unsigned long seq = 0;
	double end = now_s() + o->seconds, silent_since = 0;
	unsigned rng = (unsigned)(w->id * 2654435761u) | 1;
	answer a = {NULL, 0, 0};
	while (now_s() < end) {
		rng = rng * 1103515245u + 12345u;
		snprintf(key, sizeof(key), "t%d/k%d", w->id, (int)((rng >> 8) % (unsigned)o->keys));
		snprintf(url, sizeof(url), "%s/api/v0/kv/%s", o->url, key);
		int del = o->deletes && ((rng >> 4) % 8) == 0;
		fill_value(value, o->value_size, key, ++seq);
		double started = now_s();
		long st = del ? request(c, "DELETE", url, o->ack, NULL, 0, &a)
		              : request(c, "PUT", url, o->ack, value, (size_t)o->value_size, &a);
		if (st == 200) {
			const char *v = strstr(a.body, "\"version\":");
			uint64_t version = v ? strtoull(v + 10, NULL, 10) : 0;
			if (version == 0) {
				fprintf(stderr, "engine_load: 200 without a version: %s\n", a.body);
				atomic_fetch_add(&g_errors, 1);
				continue;
			}
			pthread_mutex_lock(&g_log_lock);
			if (del)
				fprintf(g_log, "%s %" PRIu64 " -\n", key, version);
			else
				fprintf(g_log, "%s %" PRIu64 " %016" PRIx64 "\n", key, version,
				        fnv(value, (size_t)o->value_size));
			fflush(g_log);
			pthread_mutex_unlock(&g_log_lock);
			atomic_fetch_add(&g_acked, 1);
			unsigned long slot = atomic_fetch_add(&g_n_latency, 1);
			if (slot < LATENCIES_MAX)
				g_latency[slot] = now_s() - started;
			silent_since = 0;
			continue;
		}
		if (st == 429 || st == 503) {
			atomic_fetch_add(&g_busy, 1);
			usleep(20000);
			continue;
		}
		atomic_fetch_add(&g_errors, 1);
		if (st < 0) { /* no answer: the server is down or restarting */
			if (silent_since == 0)
				silent_since = now_s();
			else if (now_s() - silent_since > o->give_up_ms / 1000.0)
				break;
			usleep(10000);
		} else {
			fprintf(stderr, "engine_load: %s %s: %ld %s\n", del ? "DELETE" : "PUT", key,
			        st, a.body);
		}
	}
	free(value);
	free(a.body);
	curl_easy_cleanup(c);
	return NULL;
}

typedef struct acked {
	char key[64];
	uint64_t version;
	char hash[20];
} acked;

static int cmp_key(const void *a, const void *b)
{
	return strcmp(((const acked *)a)->key, ((const acked *)b)->key);
}

static int check(const opts *o)
{
	FILE *f = fopen(o->log, "r");
	if (f == NULL) {
		perror(o->log);
		return 2;
	}
	size_t n = 0, cap = 1024;
	acked *rows = malloc(cap * sizeof(*rows));
	char line[256];
	while (fgets(line, sizeof(line), f)) {
		acked r;
		if (sscanf(line, "%63s %" SCNu64 " %19s", r.key, &r.version, r.hash) != 3)
			continue; /* a torn last line: never acknowledged to anyone */
		if (n == cap)
			rows = realloc(rows, (cap *= 2) * sizeof(*rows));
		rows[n++] = r;
	}
	fclose(f);
	/* each key's last line is its newest acknowledged write */
	size_t m = 0;
	{
		typedef struct kp {
			acked a;
			size_t pos;
		} kp;
		kp *k = malloc((n ? n : 1) * sizeof(*k));
		for (size_t i = 0; i < n; i++)
			k[i] = (kp){rows[i], i};
		qsort(k, n, sizeof(*k), cmp_key);
		for (size_t i = 0; i < n;) {
			size_t j = i, best = i;
			while (j < n && strcmp(k[j].a.key, k[i].a.key) == 0) {
				if (k[j].pos > k[best].pos)
					best = j;
				j++;
			}
			rows[m++] = k[best].a;
			i = j;
		}
		free(k);
	}
	CURL *c = curl_easy_init();
	unsigned long missing = 0, newer = 0;
	char url[1024];
	answer a = {NULL, 0, 0}, s = {NULL, 0, 0};
	for (size_t i = 0; i < m; i++) {
		snprintf(url, sizeof(url), "%s/api/v0/kv/%s", o->url, rows[i].key);
		long st = request(c, "GET", url, NULL, NULL, 0, &a);
		int deleted = strcmp(rows[i].hash, "-") == 0;
		if (st == 404 && deleted)
			continue;
		if (st != 200) {
			/* a 404 for a write, or a 404 after a newer write: look closer */
			snprintf(url, sizeof(url), "%s/api/v0/kv/%s/status", o->url, rows[i].key);
			long st2 = request(c, "GET", url, NULL, NULL, 0, &s);
			const char *v = strstr(s.body, "\"version\":");
			uint64_t version = st2 == 200 && v ? strtoull(v + 10, NULL, 10) : 0;
			if (version > rows[i].version) {
				newer++;
				continue;
			}
			fprintf(stderr,
			        "MISSING %s: acknowledged version %" PRIu64 ", got %ld (%s)\n",
			        rows[i].key, rows[i].version, st, a.body);
			missing++;
			continue;
		}
		if (a.version > rows[i].version) {
			newer++;
			continue;
		}
		char got[20];
		snprintf(got, sizeof(got), "%016" PRIx64, fnv(a.body, a.len));
		if (a.version < rows[i].version || deleted || strcmp(got, rows[i].hash) != 0) {
			fprintf(stderr,
			        "MISSING %s: acknowledged version %" PRIu64 " (%s), found %" PRIu64
			        " (%s)\n",
			        rows[i].key, rows[i].version, rows[i].hash, a.version, got);
			missing++;
		}
	}
	free(a.body);
	free(s.body);
	curl_easy_cleanup(c);
	printf("checked=%zu missing=%lu newer=%lu\n", m, missing, newer);
	free(rows);
	return missing || m == 0 ? 1 : 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: engine_load load|check URL LOG [options]\n");
	return 2;
}

int main(int argc, char **argv)
{
	opts o = {NULL, NULL, "local", 4, 1000, 10, 256, 0, 5000};
	if (argc < 4)
		return usage();
	o.url = argv[2];
	o.log = argv[3];
	for (int i = 4; i < argc; i++) {
		if (strcmp(argv[i], "--deletes") == 0) {
			o.deletes = 1;
			continue;
		}
		if (i + 1 >= argc)
			return usage();
		const char *v = argv[++i];
		if (strcmp(argv[i - 1], "--threads") == 0)
			o.threads = atoi(v);
		else if (strcmp(argv[i - 1], "--keys") == 0)
			o.keys = atoi(v);
		else if (strcmp(argv[i - 1], "--seconds") == 0)
			o.seconds = atoi(v);
		else if (strcmp(argv[i - 1], "--ack") == 0)
			o.ack = v;
		else if (strcmp(argv[i - 1], "--value-size") == 0)
			o.value_size = atoi(v);
		else if (strcmp(argv[i - 1], "--give-up-ms") == 0)
			o.give_up_ms = atoi(v);
		else
			return usage();
	}
	if (o.threads < 1 || o.keys < 1 || o.value_size < 1 || o.value_size > 1 << 20)
		return usage();
	curl_global_init(CURL_GLOBAL_ALL);
	if (strcmp(argv[1], "check") == 0)
		return check(&o);
	if (strcmp(argv[1], "load") != 0)
		return usage();
	if ((g_log = fopen(o.log, "a")) == NULL) {
		perror(o.log);
		return 2;
	}
	if ((g_latency = calloc(LATENCIES_MAX, sizeof(*g_latency))) == NULL) {
		perror("engine_load");
		return 2;
	}
	pthread_t *t = calloc((size_t)o.threads, sizeof(*t));
	worker *w = calloc((size_t)o.threads, sizeof(*w));
	for (int i = 0; i < o.threads; i++) {
		w[i] = (worker){&o, i};
		pthread_create(&t[i], NULL, load_main, &w[i]);
	}
	for (int i = 0; i < o.threads; i++)
		pthread_join(t[i], NULL);
	fclose(g_log);
	unsigned long n = atomic_load(&g_n_latency);
	n = n < LATENCIES_MAX ? n : LATENCIES_MAX;
	qsort(g_latency, n, sizeof(*g_latency), cmp_double);
	printf("acked=%lu busy=%lu errors=%lu p50_ms=%.1f p99_ms=%.1f max_ms=%.1f\n",
	       atomic_load(&g_acked), atomic_load(&g_busy), atomic_load(&g_errors),
	       percentile(g_latency, n, 0.5), percentile(g_latency, n, 0.99),
	       percentile(g_latency, n, 1.0));
	free(g_latency);
	free(t);
	free(w);
	return 0;
}
