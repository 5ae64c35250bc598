/*
 * L2 on Redis, through hiredis and only plain commands (GET, SET with PX
 * and NX, SCAN, UNLINK, SELECT, AUTH), so Redis 7 and the servers that
 * speak its protocol all serve.
 *
 * Keys: PREFIX GEN ":" KEY, where GEN is L2's generation (below). The value
 * carries its kind, its version and a SHA-256 over those and its bytes
 * (l2_encode), so a read can tell which version it is and refuses a copy
 * damaged anywhere. Next to the keys,
 * PREFIX GEN "#seq" holds the number of the last pipeline the writer sent.
 *
 * Writes: callers queue them (copied) under their key's L1 shard lock, so
 * a key's writes are queued in version order; one writer thread sends them
 * in that order, up to pipeline_max per pipeline, each pipeline ending with
 * SET PREFIX GEN#seq N, on its own connection. A copy read from L3 (a
 * fill) is SET ... NX, so it never replaces a write; a write that went to
 * L3 only leaves a hole (its version, no value) so that no older copy is
 * answered or filled in over it.
 *
 * Reads: one GET on the reader connection.
 *
 * Invariants:
 *   L1  A read never answers a version older than one a write gave L3.
 *       The copies that could be older are: (a) under a write still
 *       queued: a read skips L2 while any queued write shares its key's
 *       pending slot (a counter per hash slot, raised at queue time,
 *       lowered once Redis answered); (b) under a write L2 dropped
 *       (breaker open, queue full, a pipeline that failed): a dropped
 *       write makes L2 untrusted, and reads skip it until the writer has
 *       started a new generation, whose keys hold nothing older than the
 *       drop; (c) from a Redis that lost writes (restarted from an older
 *       snapshot, or empty): every new connection, reader or writer, reads
 *       GEN#seq before its first use, and a number below the last pipeline
 *       Redis answered means loss: untrusted, new generation; (d) from an
 *       engine that stopped without a clean close, whose queued writes
 *       were lost: DIR/l2_state records a clean close with its generation
 *       and pipeline number, anything else starts a new generation.
 *       A read that raced a generation change (state read before and
 *       after differ) is a miss.
 *   L2  L2 never holds the only copy of a write that goes to L3 (the WAL
 *       and L3 have it), so a drop costs reads from L3, never data. A
 *       write to L2 only (a cache write) is as durable as Redis is.
 *   L3  Every Redis call has a deadline (timeout_ms) and goes through the
 *       breaker; while it is open, reads go to L3 and writes are dropped
 *       (counted), as a cache's are.
 *   L4  Old generations are removed by the writer when it is idle (SCAN
 *       and UNLINK of PREFIX<older>...), a page at a time.
 */
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/l2.h"
#include "connect/server_url.h"

#define HEADER_LEN      (1 + 8 + 32)
#define PENDING_SLOTS   65536u
#define IDLE_WAIT_MS    100
#define SCAN_PAGE       "500"
#define KEY_PREFIX_MAX  64
#define KEY_HEAD_MAX    (KEY_PREFIX_MAX + 24)
#define STATE_FILE      "l2_state"
#define FLAG_CACHE_ONLY 0x10
#define KIND_MASK       0x03

typedef struct queued {
	struct queued *next;
	l2_kind kind;
	uint64_t hash, version, ttl_ms;
	int fill, cache_only;
	l2_waiter *waiter;
	size_t key_len, value_len;
	const char *key;      /* key_len bytes, in data */
	const uint8_t *value; /* value_len bytes, in data after the key */
	uint8_t data[];
} queued;

struct l2_cache {
	l2_options o;
	char *prefix, *state_path;
	sl_server_url url;
	sl_metrics *metrics;

	/* the queue: appended by callers, taken by the writer */
	pthread_mutex_t lock;
	pthread_cond_t cond;      /* the writer waits for work */
	pthread_cond_t done_cond; /* waiters wait for their answer */
	queued *head, *tail;
	size_t n_queued;
	int stop;
	uint64_t stop_deadline_ns;
	_Atomic uint32_t *pending; /* per hash slot: writes queued, not answered */

	/* the generation; state = generation << 1 | untrusted */
	_Atomic uint64_t state;
	_Atomic uint64_t answered_seq; /* the last pipeline Redis answered */
	uint64_t sent_seq;             /* the writer's */
	int cleanup_pending;           /* the writer's: old generations to remove */
	char scan_cursor[32];

	pthread_t writer;
	int writer_started;
	redisContext *wconn;

	pthread_mutex_t read_lock;
	redisContext *rconn;

	pthread_mutex_t error_lock;
	char error[200];
	atomic_int up;
	_Atomic uint64_t n_hits, n_misses, n_skipped, n_errors, n_writes, n_dropped;
	sl_metric *m_hits, *m_misses, *m_skipped, *m_errors, *m_writes, *m_dropped, *m_trusted;
};

/* ------------------------------------------------------------ encoding */

/* SHA-256 of the flags, the version and the value: a copy damaged
 * anywhere is refused. */
static int digest_of(sl_digest *out, const uint8_t header[9], const void *value, size_t len)
{
	sl_bytes parts[2] = {{header, 9}, {value, len}};
	sl_sha256_parts(out, parts, len ? 2 : 1);
	return SL_OK;
}

int l2_encode(sl_buf *out, l2_kind kind, uint64_t version, int cache_only, const void *value,
              size_t value_len)
{
	uint8_t header[HEADER_LEN];
	sl_digest d;
	if (kind != L2_VALUE)
		value_len = 0;
	header[0] = (uint8_t)((unsigned)kind | (cache_only ? FLAG_CACHE_ONLY : 0));
	sl_be64_put(header + 1, version);
	int rc = digest_of(&d, header, value, value_len);
	if (rc != SL_OK)
		return rc;
	memcpy(header + 9, d.bytes, 32);
	sl_buf_reset(out);
	rc = sl_buf_append(out, header, HEADER_LEN);
	if (rc == SL_OK && value_len)
		rc = sl_buf_append(out, value, value_len);
	return rc;
}

int l2_decode(const uint8_t *data, size_t len, l2_kind *kind, uint64_t *version, int *cache_only,
              const uint8_t **value, size_t *value_len)
{
	if (len < HEADER_LEN)
		return sl_error_set(SL_ECORRUPT,
		                    "an L2 value of %zu bytes is shorter than its header", len);
	unsigned k = data[0] & KIND_MASK;
	if ((data[0] & ~(KIND_MASK | FLAG_CACHE_ONLY)) != 0 || k == 0)
		return sl_error_set(SL_ECORRUPT, "an L2 value has unknown flags 0x%02x", data[0]);
	if (k != L2_VALUE && len != HEADER_LEN)
		return sl_error_set(SL_ECORRUPT, "an L2 tombstone or hole carries a value");
	sl_digest d;
	int rc = digest_of(&d, data, data + HEADER_LEN, len - HEADER_LEN);
	if (rc != SL_OK)
		return rc;
	if (memcmp(d.bytes, data + 9, 32) != 0)
		return sl_error_set(SL_ECORRUPT, "an L2 value does not match its digest");
	*kind = (l2_kind)k;
	*version = sl_be64_get(data + 1);
	*cache_only = (data[0] & FLAG_CACHE_ONLY) != 0;
	*value = data + HEADER_LEN;
	*value_len = len - HEADER_LEN;
	return SL_OK;
}

/* ------------------------------------------------------------- helpers */

static void set_error(l2_cache *c, const char *what, const char *detail)
{
	pthread_mutex_lock(&c->error_lock);
	snprintf(c->error, sizeof(c->error), "%s: %.150s", what, detail);
	pthread_mutex_unlock(&c->error_lock);
}

static uint64_t generation_of(uint64_t state)
{
	return state >> 1;
}

static int untrusted(uint64_t state)
{
	return (int)(state & 1);
}

/* L2 may hold copies older than L3's: reads skip it until the writer
 * starts a new generation (L1 b, c). */
static void distrust(l2_cache *c)
{
	atomic_fetch_or(&c->state, 1);
	if (c->m_trusted)
		sl_metric_set(c->m_trusted, 0);
}

/* PREFIX GEN ":", the head of every key of a generation. */
static size_t key_head(const l2_cache *c, uint64_t generation, char out[KEY_HEAD_MAX])
{
	return (size_t)snprintf(out, KEY_HEAD_MAX, "%s%" PRIu64 ":", c->prefix, generation);
}

static int key_of(const char *head, size_t head_len, const char *key, size_t key_len, sl_buf *out)
{
	sl_buf_reset(out);
	int rc = sl_buf_append(out, head, head_len);
	return rc == SL_OK ? sl_buf_append(out, key, key_len) : rc;
}

static void seq_key(const l2_cache *c, uint64_t generation, char *out, size_t cap)
{
	snprintf(out, cap, "%s%" PRIu64 "#seq", c->prefix, generation);
}

static uint64_t mono_ms(void)
{
	return sl_clock_mono_ns() / 1000000;
}

/* ---------------------------------------------------------- the state */

/* DIR/l2_state: "GEN SEQ clean\n" after a clean close, "GEN 0 open\n" while
 * running. Written whole to a temporary file, synced, renamed. */
static int state_write(l2_cache *c, uint64_t generation, uint64_t seq, int clean)
{
	char tmp[4096], line[96];
	snprintf(tmp, sizeof(tmp), "%s.tmp", c->state_path);
	int n = snprintf(line, sizeof(line), "%" PRIu64 " %" PRIu64 " %s\n", generation, seq,
	                 clean ? "clean" : "open");
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return sl_error_set(SL_EIO, "open %s: %s", tmp, strerror(errno));
	int ok = write(fd, line, (size_t)n) == n && fdatasync(fd) == 0;
	int saved = errno;
	close(fd);
	if (!ok || rename(tmp, c->state_path) != 0) {
		if (ok)
			saved = errno;
		unlink(tmp);
		return sl_error_set(SL_EIO, "write %s: %s", c->state_path, strerror(saved));
	}
	return SL_OK;
}

/* The generation to use now: the recorded one after a clean close (with
 * the pipeline number Redis must still hold), else a new one (L1 d). */
static int state_start(l2_cache *c)
{
	uint64_t generation = 0, seq = 0;
	char word[16] = "";
	FILE *f = fopen(c->state_path, "r");
	if (f) {
		if (fscanf(f, "%" SCNu64 " %" SCNu64 " %15s", &generation, &seq, word) != 3)
			generation = seq = 0, word[0] = '\0';
		fclose(f);
	}
	int clean = strcmp(word, "clean") == 0;
	if (!clean) {
		generation++;
		seq = 0;
	}
	int rc = state_write(c, generation, 0, 0);
	if (rc != SL_OK)
		return rc;
	atomic_store(&c->state, generation << 1);
	atomic_store(&c->answered_seq, seq);
	c->sent_seq = seq;
	c->cleanup_pending = 1;
	return SL_OK;
}

/* The writer: a new generation, so nothing older than a drop is read. */
static int new_generation(l2_cache *c)
{
	uint64_t generation = generation_of(atomic_load(&c->state)) + 1;
	int rc = state_write(c, generation, 0, 0);
	if (rc != SL_OK) {
		set_error(c, "start a new L2 generation", sl_error_last()->message);
		return rc;
	}
	atomic_store(&c->answered_seq, 0);
	c->sent_seq = 0;
	atomic_store(&c->state, generation << 1);
	c->cleanup_pending = 1;
	snprintf(c->scan_cursor, sizeof(c->scan_cursor), "0");
	if (c->m_trusted)
		sl_metric_set(c->m_trusted, 1);
	sl_log(SL_LOG_INFO, "L2 generation started", "generation=%llu",
	       (unsigned long long)generation);
	return SL_OK;
}

/* ---------------------------------------------------------- connections */

static struct timeval tv_of(unsigned ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	return tv;
}

static void drop_conn(redisContext **conn)
{
	if (*conn)
		redisFree(*conn);
	*conn = NULL;
}

/* A command's reply, or NULL with the error recorded (the connection is
 * then unusable and dropped). */
static redisReply *command(l2_cache *c, redisContext **conn, int argc, const char **argv,
                           const size_t *lens)
{
	redisReply *r = redisCommandArgv(*conn, argc, argv, lens);
	if (r == NULL) {
		set_error(c, "Redis", (*conn)->errstr[0] ? (*conn)->errstr : "no reply");
		drop_conn(conn);
	}
	return r;
}

/* Reads GEN#seq: a number below the last pipeline Redis answered means
 * Redis lost writes (L1 c). */
static int verify_seq(l2_cache *c, redisContext **conn)
{
	uint64_t state = atomic_load(&c->state);
	char key[KEY_PREFIX_MAX + 40];
	seq_key(c, generation_of(state), key, sizeof(key));
	const char *argv[] = {"GET", key};
	size_t lens[] = {3, strlen(key)};
	redisReply *r = command(c, conn, 2, argv, lens);
	if (r == NULL)
		return SL_EIO;
	uint64_t seq = 0;
	if (r->type == REDIS_REPLY_STRING)
		seq = strtoull(r->str, NULL, 10);
	int bad = r->type == REDIS_REPLY_ERROR;
	if (bad)
		set_error(c, "Redis GET", r->str);
	freeReplyObject(r);
	if (bad) {
		drop_conn(conn);
		return SL_EIO;
	}
	if (seq < atomic_load(&c->answered_seq) && atomic_load(&c->state) == state) {
		sl_log(SL_LOG_WARN,
		       "L2 lost writes; its copies are not trusted until a new generation",
		       "redis_seq=%llu answered_seq=%llu", (unsigned long long)seq,
		       (unsigned long long)atomic_load(&c->answered_seq));
		distrust(c);
	}
	return SL_OK;
}

static int simple_ok(l2_cache *c, redisContext **conn, int argc, const char **argv)
{
	size_t lens[3];
	for (int i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	redisReply *r = command(c, conn, argc, argv, lens);
	if (r == NULL)
		return SL_EIO;
	int ok = r->type != REDIS_REPLY_ERROR;
	if (!ok)
		set_error(c, argv[0], r->str);
	freeReplyObject(r);
	if (!ok)
		drop_conn(conn);
	return ok ? SL_OK : SL_EIO;
}

/* Connects if needed: timeouts, AUTH, SELECT, then verify_seq. */
static int ensure_conn(l2_cache *c, redisContext **conn)
{
	if (*conn)
		return SL_OK;
	*conn = redisConnectWithTimeout(c->url.host, c->url.port, tv_of(c->o.connect_timeout_ms));
	if (*conn == NULL || (*conn)->err) {
		set_error(c, "connect to Redis", *conn ? (*conn)->errstr : "out of memory");
		drop_conn(conn);
		return SL_EIO;
	}
	if (redisSetTimeout(*conn, tv_of(c->o.timeout_ms)) != REDIS_OK) {
		set_error(c, "Redis", "cannot set the timeout");
		drop_conn(conn);
		return SL_EIO;
	}
	redisEnableKeepAlive(*conn);
	int rc = SL_OK;
	if (c->url.password != NULL && c->url.password[0]) {
		const char *a2[] = {"AUTH", c->url.password};
		const char *a3[] = {"AUTH", c->url.user, c->url.password};
		rc = c->url.user ? simple_ok(c, conn, 3, a3) : simple_ok(c, conn, 2, a2);
	}
	if (rc == SL_OK && c->url.db) {
		char db[16];
		snprintf(db, sizeof(db), "%u", c->url.db);
		const char *a[] = {"SELECT", db};
		rc = simple_ok(c, conn, 2, a);
	}
	return rc == SL_OK ? verify_seq(c, conn) : rc;
}

/* --------------------------------------------------------------- reads */

int l2_get(l2_cache *c, const char *key, size_t key_len, uint64_t hash, sl_buf *value, l2_hit *hit)
{
	uint64_t state = atomic_load(&c->state);
	if (untrusted(state) || atomic_load(&c->pending[hash % PENDING_SLOTS]) != 0) {
		atomic_fetch_add(&c->n_skipped, 1);
		sl_metric_add(c->m_skipped, 1);
		return sl_error_set(SL_ENOTFOUND, "L2 cannot answer this key now");
	}
	if (!sl_breaker_allow(c->o.breaker, mono_ms()))
		return sl_error_set(SL_EIO, "L2's breaker is open");
	sl_buf k = SL_BUF_INIT(SIZE_MAX);
	char head[KEY_HEAD_MAX];
	int rc = key_of(head, key_head(c, generation_of(state), head), key, key_len, &k);
	if (rc != SL_OK) {
		sl_buf_free(&k);
		return rc;
	}
	redisReply *r = NULL;
	pthread_mutex_lock(&c->read_lock);
	rc = ensure_conn(c, &c->rconn);
	if (rc == SL_OK) {
		const char *argv[] = {"GET", (const char *)k.data};
		size_t lens[] = {3, k.len};
		if ((r = command(c, &c->rconn, 2, argv, lens)) == NULL)
			rc = SL_EIO;
	}
	pthread_mutex_unlock(&c->read_lock);
	sl_buf_free(&k);
	sl_breaker_record(c->o.breaker, rc == SL_OK && r->type != REDIS_REPLY_ERROR, mono_ms());
	atomic_store(&c->up, rc == SL_OK);
	if (rc != SL_OK || r->type == REDIS_REPLY_ERROR) {
		if (r)
			set_error(c, "Redis GET", r->str);
		freeReplyObject(r);
		atomic_fetch_add(&c->n_errors, 1);
		sl_metric_add(c->m_errors, 1);
		pthread_mutex_lock(&c->error_lock);
		rc = sl_error_set(SL_EIO, "L2: %s", c->error);
		pthread_mutex_unlock(&c->error_lock);
		return rc;
	}
	rc = SL_ENOTFOUND;
	if (r->type == REDIS_REPLY_STRING && atomic_load(&c->state) == state) {
		l2_kind kind;
		const uint8_t *v;
		size_t vlen;
		if (l2_decode((const uint8_t *)r->str, r->len, &kind, &hit->version,
		              &hit->cache_only, &v, &vlen) != SL_OK) {
			sl_log(SL_LOG_WARN, "L2 value damaged; asking L3", "error=%s",
			       sl_error_last()->message);
		} else if (kind != L2_HOLE) {
			hit->kind = kind;
			rc = kind == L2_VALUE ? sl_buf_set(value, v, vlen) : SL_OK;
		}
	}
	freeReplyObject(r);
	if (rc == SL_ENOTFOUND) {
		atomic_fetch_add(&c->n_misses, 1);
		sl_metric_add(c->m_misses, 1);
		return sl_error_set(SL_ENOTFOUND, "not in L2");
	}
	if (rc == SL_OK) {
		atomic_fetch_add(&c->n_hits, 1);
		sl_metric_add(c->m_hits, 1);
	}
	return rc;
}

/* --------------------------------------------------------------- writes */

static void queued_free(queued *q)
{
	sl_free(q);
}

int l2_enqueue(l2_cache *c, const l2_write *w, l2_waiter *waiter)
{
	if (waiter) {
		waiter->done = 0;
		waiter->rc = SL_OK;
		waiter->error[0] = '\0';
	}
	size_t value_len = w->kind == L2_VALUE ? w->value_len : 0;
	queued *q = sl_malloc(sizeof(*q) + w->key_len + value_len);
	int rc = SL_ENOMEM;
	if (q == NULL)
		goto dropped;
	memset(q, 0, sizeof(*q));
	memcpy(q->data, w->key, w->key_len);
	if (value_len)
		memcpy(q->data + w->key_len, w->value, value_len);
	q->key = (const char *)q->data;
	q->value = value_len ? q->data + w->key_len : NULL;
	q->kind = w->kind;
	q->key_len = w->key_len;
	q->value_len = value_len;
	q->hash = w->hash;
	q->version = w->version;
	q->ttl_ms = w->ttl_ms ? w->ttl_ms : c->o.default_ttl_ms;
	q->fill = w->fill;
	q->cache_only = w->cache_only;
	q->waiter = waiter;
	pthread_mutex_lock(&c->lock);
	/* A fill is only worth sending to a Redis that answers: while the
	 * breaker is not closed it is not queued (nor counted as dropped: L2
	 * only lacks a copy, which costs a miss). */
	if (w->fill && sl_breaker_state_at(c->o.breaker, mono_ms()) != SL_BREAKER_CLOSED) {
		pthread_mutex_unlock(&c->lock);
		rc = sl_error_set(SL_EIO, "L2's breaker is not closed; the fill is not sent");
		goto dropped;
	}
	if (c->stop || c->n_queued >= c->o.queue_max ||
	    (!w->fill && sl_breaker_state_at(c->o.breaker, mono_ms()) == SL_BREAKER_OPEN)) {
		rc = sl_error_set(SL_EIO, c->stop                         ? "L2 is closing"
		                          : c->n_queued >= c->o.queue_max ? "L2's queue is full"
		                                                          : "L2's breaker is open");
		pthread_mutex_unlock(&c->lock);
		goto dropped;
	}
	if (c->tail)
		c->tail->next = q;
	else
		c->head = q;
	c->tail = q;
	c->n_queued++;
	atomic_fetch_add(&c->pending[q->hash % PENDING_SLOTS], 1);
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
	return SL_OK;
dropped:
	if (q)
		queued_free(q);
	if (!w->fill) {
		/* a fill that is dropped leaves nothing older behind */
		distrust(c);
		atomic_fetch_add(&c->n_dropped, 1);
		sl_metric_add(c->m_dropped, 1);
	}
	if (waiter) {
		waiter->done = 1;
		waiter->rc = rc;
		snprintf(waiter->error, sizeof(waiter->error), "%.190s", sl_error_last()->message);
	}
	return rc;
}

int l2_wait(l2_cache *c, l2_waiter *waiter)
{
	pthread_mutex_lock(&c->lock);
	while (!waiter->done)
		pthread_cond_wait(&c->done_cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
	if (waiter->rc != SL_OK)
		return sl_error_set(waiter->rc, "%s", waiter->error);
	return SL_OK;
}

/* Appends one write's SET to the pipeline. */
static int append_set(redisContext *conn, const queued *q, const char *head, size_t head_len,
                      sl_buf *k, sl_buf *v)
{
	int rc = key_of(head, head_len, q->key, q->key_len, k);
	if (rc == SL_OK)
		rc = l2_encode(v, q->kind, q->version, q->cache_only, q->value, q->value_len);
	if (rc != SL_OK)
		return rc;
	char ttl[24];
	const char *argv[6] = {"SET", (const char *)k->data, (const char *)v->data};
	size_t lens[6] = {3, k->len, v->len};
	int argc = 3;
	if (q->ttl_ms) {
		snprintf(ttl, sizeof(ttl), "%" PRIu64, q->ttl_ms);
		argv[argc] = "PX";
		lens[argc++] = 2;
		argv[argc] = ttl;
		lens[argc++] = strlen(ttl);
	}
	if (q->fill) {
		argv[argc] = "NX";
		lens[argc++] = 2;
	}
	return redisAppendCommandArgv(conn, argc, argv, lens) == REDIS_OK
	               ? SL_OK
	               : sl_error_set(SL_ENOMEM, "build a Redis command");
}

/* Sends a pipeline of writes and GEN#seq, reads every reply. SL_OK when
 * Redis took all of them. */
static int send_pipeline(l2_cache *c, queued *batch)
{
	if (!sl_breaker_allow(c->o.breaker, mono_ms()))
		return sl_error_set(SL_EIO, "L2's breaker is open");
	int rc = ensure_conn(c, &c->wconn);
	uint64_t state = atomic_load(&c->state);
	if (rc == SL_OK && untrusted(state))
		rc = sl_error_set(SL_EIO, "L2 is starting a new generation");
	sl_buf k = SL_BUF_INIT(SIZE_MAX), v = SL_BUF_INIT(SIZE_MAX);
	size_t n = 0;
	char head[KEY_HEAD_MAX];
	size_t head_len = key_head(c, generation_of(state), head);
	for (queued *q = batch; rc == SL_OK && q; q = q->next, n++)
		rc = append_set(c->wconn, q, head, head_len, &k, &v);
	uint64_t seq = c->sent_seq + 1;
	if (rc == SL_OK) {
		char key[KEY_PREFIX_MAX + 40], num[24];
		seq_key(c, generation_of(state), key, sizeof(key));
		snprintf(num, sizeof(num), "%" PRIu64, seq);
		const char *argv[] = {"SET", key, num};
		size_t lens[] = {3, strlen(key), strlen(num)};
		if (redisAppendCommandArgv(c->wconn, 3, argv, lens) != REDIS_OK)
			rc = sl_error_set(SL_ENOMEM, "build a Redis command");
		n++;
	}
	sl_buf_free(&k);
	sl_buf_free(&v);
	int failed = rc != SL_OK && c->wconn != NULL; /* a command was left half-built */
	for (size_t i = 0; rc == SL_OK && i < n; i++) {
		redisReply *r = NULL;
		if (redisGetReply(c->wconn, (void **)&r) != REDIS_OK || r == NULL) {
			set_error(c, "Redis", c->wconn->errstr[0] ? c->wconn->errstr : "no reply");
			rc = sl_error_set(SL_EIO, "L2: %s", c->wconn->errstr);
			failed = 1;
		} else if (r->type == REDIS_REPLY_ERROR) {
			set_error(c, "Redis SET", r->str);
			rc = sl_error_set(SL_EIO, "L2: %s", r->str);
			failed = 1;
		}
		freeReplyObject(r);
	}
	if (failed)
		drop_conn(&c->wconn); /* replies may be left unread */
	if (rc == SL_OK) {
		c->sent_seq = seq;
		atomic_store(&c->answered_seq, seq);
	}
	if (c->wconn || rc != SL_EIO || failed)
		sl_breaker_record(c->o.breaker, rc == SL_OK, mono_ms());
	atomic_store(&c->up, rc == SL_OK);
	return rc;
}

/* Answers a batch's waiters and lowers its pending counts. */
static void finish_batch(l2_cache *c, queued *batch, int rc)
{
	char error[200] = "";
	if (rc != SL_OK)
		snprintf(error, sizeof(error), "%.190s", sl_error_last()->message);
	size_t n = 0, writes = 0; /* writes: not fills */
	pthread_mutex_lock(&c->lock);
	for (queued *q = batch; q; q = q->next, n++) {
		writes += !q->fill;
		if (q->waiter) {
			q->waiter->rc = rc;
			snprintf(q->waiter->error, sizeof(q->waiter->error), "%s", error);
			q->waiter->done = 1;
		}
		atomic_fetch_sub(&c->pending[q->hash % PENDING_SLOTS], 1);
	}
	pthread_cond_broadcast(&c->done_cond);
	pthread_mutex_unlock(&c->lock);
	if (rc == SL_OK) {
		atomic_fetch_add(&c->n_writes, n);
		sl_metric_add(c->m_writes, n);
	} else if (writes > 0) {
		/* a lost fill leaves nothing older behind (SET NX never
		 * replaced anything); a lost write does */
		distrust(c);
		atomic_fetch_add(&c->n_dropped, writes);
		sl_metric_add(c->m_dropped, writes);
	}
	while (batch) {
		queued *next = batch->next;
		queued_free(batch);
		batch = next;
	}
}

/* One page of removing old generations' keys (L4). */
static void cleanup_step(l2_cache *c)
{
	if (c->wconn == NULL || !c->cleanup_pending)
		return;
	char match[KEY_PREFIX_MAX + 2];
	snprintf(match, sizeof(match), "%s*", c->prefix);
	const char *argv[] = {"SCAN", c->scan_cursor, "MATCH", match, "COUNT", SCAN_PAGE};
	size_t lens[6];
	for (int i = 0; i < 6; i++)
		lens[i] = strlen(argv[i]);
	redisReply *r = command(c, &c->wconn, 6, argv, lens);
	if (r == NULL)
		return;
	uint64_t current = generation_of(atomic_load(&c->state));
	size_t plen = strlen(c->prefix);
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_ARRAY) {
		redisReply *keys = r->element[1];
		for (size_t i = 0; i < keys->elements; i++) {
			redisReply *k = keys->element[i];
			if (k->type != REDIS_REPLY_STRING || k->len <= plen)
				continue;
			uint64_t g = 0;
			size_t j = plen;
			while (j < k->len && k->str[j] >= '0' && k->str[j] <= '9' &&
			       g < (UINT64_C(1) << 59))
				g = g * 10 + (uint64_t)(k->str[j++] - '0');
			if (j == plen || j == k->len || (k->str[j] != ':' && k->str[j] != '#') ||
			    g >= current)
				continue;
			const char *del[] = {"UNLINK", k->str};
			size_t dlen[] = {6, k->len};
			redisReply *d = command(c, &c->wconn, 2, del, dlen);
			if (d == NULL)
				break;
			freeReplyObject(d);
		}
		snprintf(c->scan_cursor, sizeof(c->scan_cursor), "%s", r->element[0]->str);
		if (strcmp(c->scan_cursor, "0") == 0)
			c->cleanup_pending = 0;
	}
	freeReplyObject(r);
}

/* Idle with the breaker not closed: a PING as the trial call, so the
 * breaker closes again without waiting for traffic. */
static void probe(l2_cache *c)
{
	if (!sl_breaker_allow(c->o.breaker, mono_ms()))
		return;
	int rc = ensure_conn(c, &c->wconn);
	if (rc == SL_OK) {
		const char *argv[] = {"PING"};
		rc = simple_ok(c, &c->wconn, 1, argv);
	}
	sl_breaker_record(c->o.breaker, rc == SL_OK, mono_ms());
	atomic_store(&c->up, rc == SL_OK);
}

static void *writer_main(void *arg)
{
	l2_cache *c = arg;
	for (;;) {
		pthread_mutex_lock(&c->lock);
		if (c->head == NULL && !c->stop)
			sl_cond_wait_ms(&c->cond, &c->lock, IDLE_WAIT_MS);
		int stop =
		        c->stop && (c->head == NULL || sl_clock_mono_ns() >= c->stop_deadline_ns);
		queued *batch = NULL, **tail = &batch;
		for (size_t n = 0; !stop && c->head && n < c->o.pipeline_max; n++) {
			queued *q = c->head;
			c->head = q->next;
			if (c->head == NULL)
				c->tail = NULL;
			q->next = NULL;
			*tail = q;
			tail = &q->next;
			c->n_queued--;
		}
		if (stop) {
			batch = c->head;
			c->head = c->tail = NULL;
			c->n_queued = 0;
		}
		pthread_mutex_unlock(&c->lock);
		if (stop) {
			if (batch)
				finish_batch(c, batch,
				             sl_error_set(SL_EIO, "L2 closed before sending it"));
			break;
		}
		uint64_t state = atomic_load(&c->state);
		if (untrusted(state) && sl_breaker_allow(c->o.breaker, mono_ms())) {
			/* L1 b, c: writes resume in a new generation */
			int rc = ensure_conn(c, &c->wconn);
			sl_breaker_record(c->o.breaker, rc == SL_OK, mono_ms());
			if (rc == SL_OK)
				new_generation(c);
		}
		if (batch) {
			int rc = send_pipeline(c, batch);
			finish_batch(c, batch, rc);
			if (rc != SL_OK && c->wconn == NULL)
				sl_sleep_ms(IDLE_WAIT_MS /
				            4); /* not a busy loop while Redis is away */
		} else if (sl_breaker_state_at(c->o.breaker, mono_ms()) != SL_BREAKER_CLOSED) {
			probe(c);
		} else if (!untrusted(atomic_load(&c->state))) {
			cleanup_step(c);
		}
	}
	return NULL;
}

/* ------------------------------------------------------------ lifecycle */

static void free_all(l2_cache *c)
{
	drop_conn(&c->wconn);
	drop_conn(&c->rconn);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	pthread_cond_destroy(&c->done_cond);
	pthread_mutex_destroy(&c->read_lock);
	pthread_mutex_destroy(&c->error_lock);
	sl_free((void *)c->pending);
	sl_free(c->prefix);
	sl_free(c->state_path);
	sl_server_url_clear(&c->url);
	sl_free(c);
}

static void metrics_init(l2_cache *c)
{
	sl_metrics *m = c->o.metrics;
	if (m == NULL)
		return;
	c->m_hits = sl_metrics_counter(m, "sluice_engine_l2_hits_total", NULL, "reads L2 answered");
	c->m_misses = sl_metrics_counter(m, "sluice_engine_l2_misses_total", NULL,
	                                 "reads L2 did not have");
	c->m_skipped = sl_metrics_counter(m, "sluice_engine_l2_skipped_total", NULL,
	                                  "reads that did not ask L2: a write of the key queued, "
	                                  "or L2 not trusted");
	c->m_errors = sl_metrics_counter(m, "sluice_engine_l2_errors_total", NULL,
	                                 "reads L2 failed (then L3 answered)");
	c->m_writes =
	        sl_metrics_counter(m, "sluice_engine_l2_writes_total", NULL, "writes Redis took");
	c->m_dropped = sl_metrics_counter(m, "sluice_engine_l2_dropped_total", NULL,
	                                  "writes L2 dropped (breaker open, queue full, failure)");
	c->m_trusted =
	        sl_metrics_gauge(m, "sluice_engine_l2_trusted", NULL, "1 while reads use L2");
	if (c->m_trusted)
		sl_metric_set(c->m_trusted, 1);
}

int l2_open(l2_cache **out, const l2_options *o)
{
	if (o->prefix == NULL || strlen(o->prefix) >= KEY_PREFIX_MAX)
		return sl_error_set(SL_EINVAL, "the L2 key prefix must be under %d bytes",
		                    KEY_PREFIX_MAX);
	if (o->breaker == NULL || o->state_dir == NULL || o->timeout_ms == 0 ||
	    o->connect_timeout_ms == 0 || o->queue_max == 0 || o->pipeline_max == 0)
		return sl_error_set(SL_EINVAL,
		                    "L2 needs a breaker, a directory, timeouts and a queue");
	l2_cache *c = sl_calloc(1, sizeof(*c));
	if (c == NULL)
		return SL_ENOMEM;
	c->o = *o;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	pthread_cond_init(&c->done_cond, NULL);
	pthread_mutex_init(&c->read_lock, NULL);
	pthread_mutex_init(&c->error_lock, NULL);
	snprintf(c->scan_cursor, sizeof(c->scan_cursor), "0");
	int rc = sl_server_url_parse(&c->url, o->url, &sl_server_url_redis);
	if (rc == SL_OK &&
	    ((c->prefix = sl_strdup(o->prefix)) == NULL ||
	     (c->state_path = sl_strdup_printf("%s/%s", o->state_dir, STATE_FILE)) == NULL ||
	     (c->pending = sl_calloc(PENDING_SLOTS, sizeof(*c->pending))) == NULL))
		rc = SL_ENOMEM;
	if (rc == SL_OK)
		rc = state_start(c);
	if (rc == SL_OK) {
		metrics_init(c);
		if (pthread_create(&c->writer, NULL, writer_main, c) != 0)
			rc = sl_error_set(SL_EIO, "start the L2 writer: %s", strerror(errno));
		else
			c->writer_started = 1;
	}
	if (rc != SL_OK) {
		sl_error_wrap("open L2"); /* not the url: it may hold a password */
		free_all(c);
		return rc;
	}
	*out = c;
	return SL_OK;
}

void l2_close(l2_cache *c, unsigned drain_ms)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	c->stop = 1;
	c->stop_deadline_ns = sl_clock_mono_ns() + (uint64_t)drain_ms * 1000000;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
	if (c->writer_started)
		pthread_join(c->writer, NULL);
	uint64_t state = atomic_load(&c->state);
	/* clean only when everything queued reached Redis and it is trusted */
	if (!untrusted(state))
		state_write(c, generation_of(state), atomic_load(&c->answered_seq), 1);
	sl_error_clear();
	free_all(c);
}

void l2_stats_get(l2_cache *c, l2_stats *out)
{
	memset(out, 0, sizeof(*out));
	uint64_t state = atomic_load(&c->state);
	out->up = atomic_load(&c->up);
	out->trusted = !untrusted(state);
	out->generation = generation_of(state);
	out->hits = atomic_load(&c->n_hits);
	out->misses = atomic_load(&c->n_misses);
	out->skipped = atomic_load(&c->n_skipped);
	out->errors = atomic_load(&c->n_errors);
	out->writes = atomic_load(&c->n_writes);
	out->dropped = atomic_load(&c->n_dropped);
	pthread_mutex_lock(&c->lock);
	out->queued = c->n_queued;
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_lock(&c->error_lock);
	snprintf(out->error, sizeof(out->error), "%s", c->error);
	pthread_mutex_unlock(&c->error_lock);
}
