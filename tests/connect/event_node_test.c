/*
 * The store and node event sources against a store in a temporary
 * directory, served by a sync server in this process (loopback, a free
 * port):
 *   test_store_source   sets, updates and deletes over several commits
 *                       (values inline and in blobs) read in pieces and
 *                       from every position equal the log; commits made
 *                       through another handle are seen; waiting; past the
 *                       end and below the pruned boundary are SL_EINVAL;
 *   test_node_source    the node's events equal the store's, in pieces of
 *                       small frames and from every position; a commit
 *                       made while reading is followed; state round trip;
 *   test_node_refusals  a target signed by another key, a restored state
 *                       the node does not extend (another root, a longer
 *                       log), malformed states, a missing namespace, a
 *                       pruned position, a 429, a closed port;
 *   test_frame_check    every single-bit change of a frame is refused by
 *                       sl_sync_check_ops (or by the decoder).
 * Seeded (rerun with SLUICE_SEED=<seed>).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "connect/event_internal.h"
#include "sluice/sync.h"
#include "testutil.h"

static tu_rng rng;

typedef struct written {
	sl_digest digest;
	uint8_t *bytes;
	size_t len;
} written;

typedef struct fixture {
	char *dir;
	sl_store *s;
	sl_node_key key;
	sl_sync_server *srv;
	char url[64];
	written *vals;
	size_t n_vals, cap_vals;
	uint64_t next_key; /* immutable keys are never set twice */
} fixture;

static fixture fx;

/* ------------------------------------------------------------- helpers */

static void remember(const uint8_t *bytes, size_t len)
{
	written *w;
	fx.vals = sl_grow(fx.vals, &fx.cap_vals, fx.n_vals, sizeof(*fx.vals), 64);
	assert_non_null(fx.vals);
	w = &fx.vals[fx.n_vals++];
	sl_sha256(&w->digest, bytes, len);
	w->bytes = malloc(len + 1);
	assert_non_null(w->bytes);
	memcpy(w->bytes, bytes, len);
	w->len = len;
}

/* One commit of n distinct keys: puts (some values over 64 bytes, so in
 * blobs) and, in a mutable namespace, deletes. */
static void commit_random(sl_store *s, const char *ns, int mutable_ns, size_t n)
{
	uint8_t value[200];
	sl_batch *b;
	size_t first = (size_t)tu_rng_below(&rng, 20);
	assert_ok(sl_batch_new(&b, s, ns));
	for (size_t i = 0; i < n; i++) {
		char key[32];
		if (mutable_ns)
			snprintf(key, sizeof(key), "k/%zu", (first + i) % 20);
		else
			snprintf(key, sizeof(key), "i/%llu", (unsigned long long)fx.next_key++);
		if (mutable_ns && tu_rng_below(&rng, 4) == 0) {
			assert_ok(sl_batch_del(b, key, strlen(key)));
		} else {
			size_t len = (size_t)tu_rng_below(&rng, sizeof(value));
			tu_rng_fill(&rng, value, len);
			remember(value, len);
			assert_ok(sl_batch_put(b, key, strlen(key), value, len));
		}
	}
	assert_ok(sl_batch_commit(b, NULL));
	sl_batch_free(b);
}

static int model_op(void *ctx, uint64_t loc, const sl_op *op, const uint8_t *element,
                    size_t element_len)
{
	sl_event_batch *model = ctx;
	const written *w = NULL;
	(void)element;
	(void)element_len;
	if (op->type == SL_OP_COMMIT)
		return 0;
	for (size_t i = 0; op->type != SL_OP_DELETE && i < fx.n_vals && !w; i++)
		if (sl_digest_eq(&fx.vals[i].digest, &op->digest))
			w = &fx.vals[i];
	assert_true(op->type == SL_OP_DELETE || w);
	return sl_event_batch_add(model, loc,
	                          op->type == SL_OP_SET      ? SL_EVENT_SET
	                          : op->type == SL_OP_UPDATE ? SL_EVENT_UPDATE
	                                                     : SL_EVENT_DELETE,
	                          op->key, op->key_len, w ? w->bytes : NULL, w ? w->len : 0,
	                          loc + 1);
}

/* The namespace's events from its log (an independent read path). */
static uint64_t build_model(const char *ns, sl_event_batch *model)
{
	sl_ns_info info;
	sl_event_batch_clear(model);
	assert_ok(sl_store_ns_head(fx.s, ns, &info));
	assert_ok(sl_store_log(fx.s, ns, info.pruned, 0, model_op, model));
	return info.target.size;
}

static void expect_same_event(const sl_event *a, const sl_event *b)
{
	assert_int_equal(a->pos, b->pos);
	assert_int_equal(a->op, b->op);
	assert_int_equal(a->key_len, b->key_len);
	assert_memory_equal(a->key, b->key, a->key_len);
	assert_int_equal(a->version, b->version);
	assert_int_equal(a->value_len, b->value_len);
	assert_int_equal(a->value == NULL, b->value == NULL);
	if (a->value_len)
		assert_memory_equal(a->value, b->value, a->value_len);
}

/* Everything from `from` to `end`, in reads of random limits. */
static void read_all(sl_event_source *s, uint64_t from, uint64_t end, sl_event_batch *out)
{
	for (int reads = 0; from < end; reads++) {
		uint64_t next;
		int at_end;
		assert_true(reads < 100000);
		assert_ok(s->ops->read(s->self, from, 1 + tu_rng_below(&rng, 40),
		                       1 + tu_rng_below(&rng, 3000), 0, out, &next, &at_end));
		assert_int_equal(at_end, 0);
		assert_true(next > from);
		from = next;
	}
	assert_int_equal(from, end);
}

static void expect_model(const sl_event_batch *got, const sl_event_batch *model, size_t first)
{
	assert_int_equal(got->n, model->n - first);
	for (size_t i = 0; i < got->n; i++)
		expect_same_event(&got->events[i], &model->events[first + i]);
}

/* One read from `from`: the model's events at positions >= from, in
 * order, none skipped. */
static void check_read(sl_event_source *s, const sl_event_batch *model, uint64_t size,
                       uint64_t from, size_t max_events)
{
	sl_event_batch got;
	uint64_t next;
	size_t first = 0;
	int at_end;

	sl_event_batch_init(&got);
	assert_ok(s->ops->read(s->self, from, max_events, 1 << 20, 0, &got, &next, &at_end));
	while (first < model->n && model->events[first].pos < from)
		first++;
	assert_true(got.n <= max_events && first + got.n <= model->n);
	for (size_t i = 0; i < got.n; i++)
		expect_same_event(&got.events[i], &model->events[first + i]);
	if (got.n == 0) {
		assert_int_equal(first, model->n);
		assert_true(next == from || next == size);
	} else {
		assert_true(next > got.events[got.n - 1].pos);
		assert_true(first + got.n == model->n || next <= model->events[first + got.n].pos);
	}
	assert_int_equal(at_end, 0);
	sl_event_batch_free(&got);
}

static int setup(void **state)
{
	sl_store_options o;
	sl_sync_server_options so;
	(void)state;
	memset(&fx, 0, sizeof(fx));
	fx.dir = tu_tempdir();
	sl_store_options_init(&o);
	o.flags = SL_STORE_CREATE;
	o.durable = 0;
	if (!fx.dir || sl_store_open(&fx.s, fx.dir, &o) != SL_OK ||
	    sl_node_key_load(&fx.key, fx.dir, 1) != SL_OK ||
	    sl_store_ns_create(fx.s, "m", SL_NS_MUTABLE) != SL_OK ||
	    sl_store_ns_create(fx.s, "i", SL_NS_IMMUTABLE) != SL_OK)
		return -1;
	for (int i = 0; i < 6; i++) {
		commit_random(fx.s, "m", 1, 1 + (size_t)tu_rng_below(&rng, 12));
		commit_random(fx.s, "i", 0, 1 + (size_t)tu_rng_below(&rng, 12));
	}
	sl_sync_server_options_init(&so);
	so.store_dir = fx.dir;
	so.key = &fx.key;
	if (sl_sync_server_start(&fx.srv, &so) != SL_OK)
		return -1;
	snprintf(fx.url, sizeof(fx.url), "127.0.0.1:%u", sl_sync_server_port(fx.srv));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sl_sync_server_stop(fx.srv);
	sl_store_free(fx.s);
	tu_rmtree(fx.dir);
	free(fx.dir);
	for (size_t i = 0; i < fx.n_vals; i++)
		free(fx.vals[i].bytes);
	sl_free(fx.vals);
	return 0;
}

/* ---------------------------------------------------------------- store */

static void test_store_source(void **state)
{
	const char *const names[] = {"m", "i"};
	sl_event_batch model, got;
	sl_event_source s;
	sl_event_source_head head;
	uint64_t size, next, started, pruned = 0;
	int at_end;
	(void)state;

	sl_event_batch_init(&model);
	sl_event_batch_init(&got);
	for (size_t k = 0; k < 2; k++) {
		const char *ns = names[k];
		size = build_model(ns, &model);
		assert_ok(sl_store_source_open(&s, fx.dir, ns));
		assert_string_equal(s.ops->kind, "store");
		assert_true(strncmp(s.name, "store:/", 7) == 0);
		assert_non_null(strstr(s.name, ns));
		assert_ok(s.ops->head(s.self, &head));
		assert_int_equal(head.end, size);
		assert_int_equal(head.known, 1);
		sl_event_batch_clear(&got);
		read_all(&s, 0, size, &got);
		expect_model(&got, &model, 0);
		for (uint64_t p = 0; p <= size; p++)
			check_read(&s, &model, size, p, 1 + (size_t)tu_rng_below(&rng, 8));
		assert_int_equal(
		        s.ops->read(s.self, size + 1, 10, 1 << 20, 0, &got, &next, &at_end),
		        SL_EINVAL);
		assert_non_null(strstr(sl_error_last()->message, "past the end"));

		/* Nothing new: waits about wait_ms. */
		started = sl_clock_mono_ns();
		sl_event_batch_clear(&got);
		assert_ok(s.ops->read(s.self, size, 10, 1 << 20, 60, &got, &next, &at_end));
		assert_true(sl_clock_mono_ns() - started >= UINT64_C(50) * 1000000);
		assert_int_equal(got.n, 0);
		assert_int_equal(next, size);

		/* A commit through another handle is seen. */
		commit_random(fx.s, ns, k == 0, 5);
		build_model(ns, &model);
		read_all(&s, size, build_model(ns, &model), &got);
		for (size_t first = 0; first < model.n; first++)
			if (model.events[first].pos >= size) {
				expect_model(&got, &model, first);
				break;
			}
		sl_event_source_close(&s);
	}

	/* Below the pruned boundary. */
	for (int i = 0; i < 30; i++)
		commit_random(fx.s, "m", 1, 20);
	assert_ok(sl_store_prune(fx.s, "m", &pruned));
	assert_true(pruned > 0);
	assert_ok(sl_store_source_open(&s, fx.dir, "m"));
	assert_int_equal(s.ops->read(s.self, pruned - 1, 10, 1 << 20, 0, &got, &next, &at_end),
	                 SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "pruned"));
	assert_ok(s.ops->read(s.self, pruned, 10, 1 << 20, 0, &got, &next, &at_end));
	sl_event_source_close(&s);

	assert_int_equal(sl_store_source_open(&s, fx.dir, "absent"), SL_ENOTFOUND);
	assert_int_equal(sl_store_source_open(&s, fx.dir, "../x"), SL_EINVAL);
	sl_event_batch_free(&model);
	sl_event_batch_free(&got);
}

/* ----------------------------------------------------------------- node */

static void open_node(sl_event_source *s, const char *ns, const uint8_t *trust, uint32_t frame)
{
	sl_node_source_options o;
	sl_node_source_options_init(&o);
	o.url = fx.url;
	o.ns = ns;
	o.trust_key = trust;
	o.frame_ops = frame;
	assert_ok(sl_node_source_open(s, &o));
}

typedef struct committer {
	const char *ns;
	unsigned delay_ms;
} committer;

static void *commit_later(void *arg)
{
	committer *c = arg;
	sl_store_options o;
	sl_store *s;
	sl_sleep_ms(c->delay_ms);
	sl_store_options_init(&o);
	o.durable = 0;
	if (sl_store_open(&s, fx.dir, &o) == SL_OK) {
		commit_random(s, c->ns, 0, 4);
		sl_store_free(s);
	}
	return NULL;
}

static void test_node_source(void **state)
{
	sl_event_batch model, got;
	sl_event_source s, again;
	sl_event_source_head head;
	committer c = {"i", 150};
	char saved[SL_EVENT_SOURCE_STATE_MAX], expect[SL_EVENT_SOURCE_STATE_MAX];
	uint64_t size, next;
	sl_ns_info info;
	pthread_t t;
	int at_end;
	(void)state;

	sl_event_batch_init(&model);
	sl_event_batch_init(&got);
	size = build_model("i", &model);
	open_node(&s, "i", fx.key.pk, 7);
	assert_string_equal(s.ops->kind, "node");
	assert_true(strncmp(s.name, "node:http://127.0.0.1:", 22) == 0);
	assert_non_null(strstr(s.name, "/i"));
	assert_ok(s.ops->save_state(s.self, saved, sizeof(saved)));
	assert_string_equal(saved, ""); /* nothing verified yet */
	assert_ok(s.ops->head(s.self, &head));
	assert_int_equal(head.end, size);
	read_all(&s, 0, size, &got);
	expect_model(&got, &model, 0);
	for (uint64_t p = 0; p <= size; p++)
		check_read(&s, &model, size, p, 1 + (size_t)tu_rng_below(&rng, 12));
	assert_int_equal(s.ops->read(s.self, size + 1, 10, 1 << 20, 0, &got, &next, &at_end),
	                 SL_EINVAL);

	/* The state is the verified target. */
	assert_ok(sl_store_ns_head(fx.s, "i", &info));
	snprintf(expect, sizeof(expect), "%llu %s", (unsigned long long)info.target.size,
	         sl_digest_to_hex(&info.target.root).s);
	assert_ok(s.ops->save_state(s.self, saved, sizeof(saved)));
	assert_string_equal(saved, expect);

	/* A commit while reading at the end is followed (this server answers
	 * the target at once, so the reads come back empty until it lands). */
	assert_int_equal(pthread_create(&t, NULL, commit_later, &c), 0);
	sl_event_batch_clear(&got);
	next = size;
	for (int i = 0; got.n == 0; i++) {
		assert_true(i < 400);
		assert_ok(s.ops->read(s.self, next, 100, 1 << 20, 100, &got, &next, &at_end));
	}
	assert_int_equal(pthread_join(t, NULL), 0);
	size = build_model("i", &model);
	read_all(&s, next, size, &got);
	for (size_t first = 0; first < model.n; first++)
		if (model.events[first].pos >= got.events[0].pos) {
			expect_model(&got, &model, first);
			break;
		}

	/* Restored from a smaller verified target: proved consistent. */
	open_node(&again, "i", NULL, 1000);
	assert_ok(again.ops->restore_state(again.self, saved));
	sl_event_batch_clear(&got);
	read_all(&again, info.target.size, size, &got);
	assert_true(got.n > 0);
	assert_ok(again.ops->save_state(again.self, expect, sizeof(expect)));
	assert_int_equal(strtoull(expect, NULL, 10), size);
	sl_event_source_close(&again);
	sl_event_source_close(&s);
	sl_event_batch_free(&model);
	sl_event_batch_free(&got);
}

/* A well-formed root: each state below that has one is malformed elsewhere. */
#define ZERO_ROOT "0000000000000000000000000000000000000000000000000000000000000000"

static void test_node_refusals(void **state)
{
	static const char *const malformed[] = {
	        "",
	        "12",
	        "12 ",
	        "12 abc",
	        "-1 " ZERO_ROOT,
	        "012 " ZERO_ROOT,
	        "12  " ZERO_ROOT,
	        "12 " ZERO_ROOT " ",
	        "12 000000000000000000000000000000000000000000000000000000000000000A",
	        "12 00000000000000000000000000000000000000000000000000000000000000",
	        "18446744073709551616 " ZERO_ROOT,
	};
	uint8_t other_pk[SL_ED25519_PK_LEN], other_sk[SL_ED25519_SK_LEN];
	char text[SL_EVENT_SOURCE_STATE_MAX];
	sl_event_source_head head;
	sl_event_batch got;
	sl_event_source s;
	sl_sync_server_options so;
	sl_sync_server *srv;
	sl_ns_info info;
	uint64_t next;
	int at_end, rc;
	(void)state;

	sl_event_batch_init(&got);
	assert_ok(sl_ed25519_keypair(other_pk, other_sk));
	open_node(&s, "i", other_pk, 0);
	assert_int_equal(s.ops->read(s.self, 0, 10, 1 << 20, 0, &got, &next, &at_end), SL_EVERIFY);
	assert_int_equal(got.n, 0);
	assert_int_equal(s.ops->head(s.self, &head), SL_EVERIFY);
	sl_event_source_close(&s);

	/* Restored states the node does not extend. */
	assert_ok(sl_store_ns_head(fx.s, "i", &info));
	for (int k = 0; k < 3; k++) {
		sl_digest root = info.target.root;
		uint64_t size = k == 2 ? info.target.size + 1 : info.target.size - (uint64_t)k;
		root.bytes[0] ^= 1;
		snprintf(text, sizeof(text), "%llu %s", (unsigned long long)size,
		         sl_digest_to_hex(&root).s);
		open_node(&s, "i", fx.key.pk, 0);
		assert_ok(s.ops->restore_state(s.self, text));
		assert_int_equal(s.ops->read(s.self, 0, 10, 1 << 20, 0, &got, &next, &at_end),
		                 SL_EVERIFY);
		assert_non_null(strstr(sl_error_last()->message, "history"));
		assert_int_equal(got.n, 0);
		sl_event_source_close(&s);
	}
	open_node(&s, "i", fx.key.pk, 0);
	for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++)
		if (s.ops->restore_state(s.self, malformed[i]) != SL_ECORRUPT)
			fail_msg("state '%s' was taken", malformed[i]);
	assert_ok(s.ops->read(s.self, 0, 1, 1 << 20, 0, &got, &next, &at_end));
	assert_int_equal(s.ops->restore_state(s.self, text), SL_EINVAL); /* after a read */
	sl_event_source_close(&s);

	/* No such namespace; a pruned position; nobody listening. */
	open_node(&s, "absent", NULL, 0);
	assert_int_equal(s.ops->read(s.self, 0, 10, 1 << 20, 0, &got, &next, &at_end),
	                 SL_ENOTFOUND);
	sl_event_source_close(&s);
	assert_ok(sl_store_ns_head(fx.s, "m", &info));
	assert_true(info.pruned > 0); /* test_store_source pruned it */
	open_node(&s, "m", fx.key.pk, 0);
	sl_event_batch_clear(&got);
	assert_int_equal(s.ops->read(s.self, 0, 10, 1 << 20, 0, &got, &next, &at_end), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "pruned"));
	assert_ok(s.ops->read(s.self, info.pruned, 10, 1 << 20, 0, &got, &next, &at_end));
	assert_true(got.n > 0);
	sl_event_source_close(&s);
	/* A node that asks to slow down: SL_EBUSY, and no request before its
	 * Retry-After. */
	sl_sync_server_options_init(&so);
	so.store_dir = fx.dir;
	so.key = &fx.key;
	so.limits.client_rate = 0.5;
	so.limits.client_burst = 1;
	assert_ok(sl_sync_server_start(&srv, &so));
	snprintf(text, sizeof(text), "127.0.0.1:%u", sl_sync_server_port(srv));
	{
		sl_node_source_options o;
		sl_node_source_options_init(&o);
		o.url = text;
		o.ns = "i";
		assert_ok(sl_node_source_open(&s, &o));
	}
	rc = SL_OK;
	for (int i = 0; i < 5 && rc == SL_OK; i++)
		rc = s.ops->read(s.self, 0, 1, 1 << 20, 0, &got, &next, &at_end);
	assert_int_equal(rc, SL_EBUSY);
	assert_non_null(strstr(sl_error_last()->message, "slow down"));
	assert_int_equal(s.ops->read(s.self, 0, 1, 1 << 20, 0, &got, &next, &at_end), SL_EBUSY);
	assert_non_null(strstr(sl_error_last()->message, "asked to wait"));
	sl_event_source_close(&s);
	sl_sync_server_stop(srv);
	{
		sl_node_source_options o;
		sl_node_source_options_init(&o);
		o.url = text;
		o.ns = "i";
		o.request_timeout_ms = 2000;
		assert_ok(sl_node_source_open(&s, &o));
	}
	rc = s.ops->read(s.self, 0, 10, 1 << 20, 0, &got, &next, &at_end);
	assert_true(rc == SL_EIO || rc == SL_ETIMEOUT);
	sl_event_source_close(&s);
	sl_event_batch_free(&got);
}

/* ---------------------------------------------------------- frame check */

static int add_to_frame(void *ctx, uint64_t loc, const sl_op *op, const uint8_t *element,
                        size_t element_len, const void *value, size_t value_len)
{
	(void)loc;
	(void)op;
	return sl_wire_ops_add(ctx, element, element_len, value, value_len);
}

static void test_frame_check(void **state)
{
	sl_buf frame = SL_BUF_INIT(1 << 20);
	sl_mmr_proof proof = {0, 0, NULL};
	sl_ns_info info;
	sl_wire_ops ops;
	uint64_t n_read, start = 3, max = 6;
	size_t decoded = 0; /* changed frames that still decode: the checks must refuse them */
	(void)state;

	assert_ok(sl_store_ns_head(fx.s, "i", &info));
	assert_ok(sl_wire_ops_begin(&frame, start, info.target.size));
	assert_ok(sl_store_read_range(fx.s, "i", info.target.size, start, max, add_to_frame, &frame,
	                              &proof, &n_read));
	assert_ok(sl_wire_ops_end(&frame, (size_t)n_read, &proof, NULL, 0));
	assert_ok(sl_wire_ops_decode(&ops, frame.data, frame.len));
	assert_ok(sl_sync_check_ops(&ops, start, max, &info.target, NULL, NULL));
	assert_int_equal(sl_sync_check_ops(&ops, start + 1, max, &info.target, NULL, NULL),
	                 SL_EVERIFY);
	assert_int_equal(sl_sync_check_ops(&ops, start, n_read - 1, &info.target, NULL, NULL),
	                 SL_EVERIFY);
	sl_wire_ops_free(&ops);
	for (size_t i = 0; i < frame.len; i++)
		for (int bit = 0; bit < 8; bit += 3) {
			frame.data[i] ^= (uint8_t)(1 << bit);
			if (sl_wire_ops_decode(&ops, frame.data, frame.len) == SL_OK) {
				if (sl_sync_check_ops(&ops, start, max, &info.target, NULL, NULL) !=
				    SL_EVERIFY)
					fail_msg("a change of byte %zu bit %d was not refused", i,
					         bit);
				decoded++;
				sl_wire_ops_free(&ops);
			}
			frame.data[i] ^= (uint8_t)(1 << bit);
		}
	assert_true(decoded > frame.len);
	sl_mmr_proof_free(&proof);
	sl_buf_free(&frame);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_store_source),
	        cmocka_unit_test(test_node_source),
	        cmocka_unit_test(test_node_refusals),
	        cmocka_unit_test(test_frame_check),
	};
	assert_int_equal(sl_base_init(), SL_OK);
	rng = tu_rng_seeded("event_node_test");
	return cmocka_run_group_tests(tests, setup, teardown);
}
