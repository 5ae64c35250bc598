/*
 * The directory sink and the local node sink: bytes arrive whole and in
 * parts, storing the same bytes again changes nothing, aborts leave nothing
 * behind, keys cannot escape the directory, and a node namespace refuses
 * other bytes for a key it holds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <dirent.h>

#include <cmocka.h>

#include "connect/node.h"
#include "sluice/connect.h"
#include "sluice/store.h"
#include "testutil.h"

static int put(sl_sink *s, const char *key, const char *data, size_t part)
{
	size_t len = strlen(data);
	void *up = NULL;
	int rc = s->ops->begin(s->self, key, len, &up);
	if (rc != SL_OK)
		return rc;
	for (size_t off = 0; off < len; off += part) {
		size_t n = len - off < part ? len - off : part;
		if ((rc = s->ops->write(s->self, up, (const uint8_t *)data + off, n)) != SL_OK) {
			s->ops->abort(s->self, up);
			return rc;
		}
	}
	return s->ops->commit(s->self, up);
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	static char buf[4096];
	size_t n;
	if (f == NULL)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void ignore_failed(void *ctx, const char *key, int code, const char *message)
{
	(void)ctx, (void)key, (void)code, (void)message;
	fail_msg("no object should be refused at flush");
}

static void test_dir_sink(void **state)
{
	char *root = tu_tempdir(), path[4096], outside[4096];
	sl_sink s = {0};
	struct stat before, after;
	void *up = NULL;
	(void)state;

	snprintf(path, sizeof(path), "%s/dest", root);
	assert_int_equal(sl_dir_sink_open(&s, path), SL_OK);
	assert_string_equal(s.ops->kind, "dir");

	/* whole and in parts, nested segments */
	assert_int_equal(put(&s, "c1/a1/trace/0001", "hello world", 3), SL_OK);
	assert_int_equal(put(&s, "trace/0002", "", 1), SL_OK);
	assert_int_equal(s.ops->flush(s.self, ignore_failed, NULL), SL_OK);
	snprintf(path, sizeof(path), "%s/dest/c1/a1/trace/0001", root);
	assert_string_equal(read_file(path), "hello world");
	snprintf(path, sizeof(path), "%s/dest/trace/0002", root);
	assert_string_equal(read_file(path), "");

	/* the same bytes again: the file is not rewritten */
	snprintf(path, sizeof(path), "%s/dest/c1/a1/trace/0001", root);
	assert_int_equal(stat(path, &before), 0);
	sl_sleep_ms(20);
	assert_int_equal(put(&s, "c1/a1/trace/0001", "hello world", 100), SL_OK);
	assert_int_equal(stat(path, &after), 0);
	assert_int_equal(before.st_ino, after.st_ino);
	assert_true(before.st_mtim.tv_nsec == after.st_mtim.tv_nsec &&
	            before.st_mtim.tv_sec == after.st_mtim.tv_sec);
	/* other bytes replace it */
	assert_int_equal(put(&s, "c1/a1/trace/0001", "changed", 2), SL_OK);
	assert_string_equal(read_file(path), "changed");

	/* abort leaves no temporary file */
	snprintf(path, sizeof(path), "%s/dest/c1/a1/trace", root);
	assert_int_equal(s.ops->begin(s.self, "c1/a1/trace/0003", 10, &up), SL_OK);
	assert_int_equal(s.ops->write(s.self, up, (const uint8_t *)"12345", 5), SL_OK);
	assert_int_equal(count_entries(path), 2); /* 0001 and the temporary file */
	s.ops->abort(s.self, up);
	assert_int_equal(count_entries(path), 1);
	/* a short object is refused at commit and leaves nothing */
	assert_int_equal(s.ops->begin(s.self, "c1/a1/trace/0004", 10, &up), SL_OK);
	assert_int_equal(s.ops->write(s.self, up, (const uint8_t *)"12345", 5), SL_OK);
	assert_int_equal(s.ops->commit(s.self, up), SL_EINVAL);
	assert_int_equal(count_entries(path), 1);

	/* no key escapes the root: bad keys, and a symlink planted inside */
	const char *bad[] = {"../x", "a/../../x", "/abs", "a//b", "a/./b", "a/b/", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(put(&s, bad[i], "x", 1), SL_EINVAL);
	snprintf(outside, sizeof(outside), "%s/outside", root);
	assert_int_equal(mkdir(outside, 0755), 0);
	snprintf(path, sizeof(path), "%s/dest/link", root);
	assert_int_equal(symlink(outside, path), 0);
	assert_int_equal(put(&s, "link/escaped", "x", 1), SL_EINVAL);
	assert_int_equal(count_entries(outside), 0);

	sl_sink_close(&s);
	sl_sink_close(&s); /* closed twice is fine */
	tu_rmtree(root);
	free(root);
}

typedef struct refused_list {
	int n;
	char key[128];
} refused_list;

static void note_failed(void *ctx, const char *key, int code, const char *message)
{
	refused_list *r = ctx;
	(void)message;
	assert_int_equal(code, SL_ECONFLICT);
	snprintf(r->key, sizeof(r->key), "%s", key);
	r->n++;
}

static void test_node_sink_local(void **state)
{
	char *root = tu_tempdir();
	sl_store *store = NULL;
	sl_ns_info info;
	sl_buf value = SL_BUF_INIT(1 << 20);
	sl_sink s = {0};
	refused_list refused = {0};
	(void)state;

	assert_int_equal(sl_node_sink_open_local(&s, root, "objects", 0), SL_OK);
	assert_int_equal(put(&s, "c1/trace/0001", "first", 2), SL_OK);
	assert_int_equal(put(&s, "trace/0002", "second", 100), SL_OK);
	assert_int_equal(s.ops->flush(s.self, note_failed, &refused), SL_OK);
	assert_int_equal(refused.n, 0);
	sl_sink_close(&s);

	assert_int_equal(sl_store_open(&store, root, NULL), SL_OK);
	assert_int_equal(sl_store_ns_info(store, "objects", &info), SL_OK);
	assert_int_equal(info.kind, SL_NS_IMMUTABLE);
	assert_int_equal(info.keys, 2);
	uint64_t size = info.target.size;
	assert_int_equal(sl_store_get(store, "objects", "c1/trace/0001", 13, &value, NULL), SL_OK);
	assert_memory_equal(value.data, "first", 5);
	sl_store_free(store);

	/* Again with the same bytes: nothing is appended. Other bytes: refused,
	 * and the rest of the batch still lands. */
	assert_int_equal(sl_node_sink_open_local(&s, root, "objects", 0), SL_OK);
	assert_int_equal(put(&s, "c1/trace/0001", "first", 5), SL_OK);
	assert_int_equal(put(&s, "trace/0002", "CHANGED", 5), SL_ECONFLICT);
	assert_int_equal(put(&s, "trace/0003", "third", 5), SL_OK);
	assert_int_equal(s.ops->flush(s.self, note_failed, &refused), SL_OK);
	sl_sink_close(&s);
	assert_int_equal(sl_store_open(&store, root, NULL), SL_OK);
	assert_int_equal(sl_store_ns_info(store, "objects", &info), SL_OK);
	assert_int_equal(info.keys, 3);
	assert_true(info.target.size > size);
	size = info.target.size;
	sl_store_free(store);

	assert_int_equal(sl_node_sink_open_local(&s, root, "objects", 0), SL_OK);
	assert_int_equal(put(&s, "trace/0003", "third", 5), SL_OK);
	assert_int_equal(s.ops->flush(s.self, note_failed, &refused), SL_OK);
	sl_sink_close(&s);
	assert_int_equal(sl_store_open(&store, root, NULL), SL_OK);
	assert_int_equal(sl_store_ns_info(store, "objects", &info), SL_OK);
	assert_int_equal(info.target.size, size);
	sl_store_free(store);

	sl_buf_free(&value);
	tu_rmtree(root);
	free(root);
}

static int store_has(sl_store *store, const char *key, const char *want)
{
	sl_buf value = SL_BUF_INIT(1 << 20);
	int rc = sl_store_get(store, "objects", key, strlen(key), &value, NULL);
	int same = rc == SL_OK && value.len == strlen(want) &&
	           memcmp(value.data, want, value.len) == 0;
	sl_buf_free(&value);
	return same;
}

/* An early commit (the gathered values passed the budget) carries objects
 * whose commit already said SL_OK. Make it fail at every allocation it
 * makes in turn: then either the next flush fails, or every object
 * committed with SL_OK is in the store. Never a flush that says SL_OK over
 * lost objects. */
static void test_node_sink_early_commit_failure(void **state)
{
	char *root = tu_tempdir();
	sl_store *store = NULL;
	refused_list refused = {0};
	int flush_failed = 0, done = 0;
	(void)state;

	for (long fail_at = 0; !done; fail_at++) {
		char first[32], second[32];
		sl_sink s = {0};
		int rc_first, rc_second, rc_flush;

		assert_true(fail_at < 10000);
		snprintf(first, sizeof(first), "a/%04ld", fail_at);
		snprintf(second, sizeof(second), "b/%04ld", fail_at);
		assert_int_equal(sl_node_sink_open_local(&s, root, "objects", 0), SL_OK);
		sl_node_sink_set_pending_budget(&s, 16);
		rc_first = put(&s, first, "0123456789", 10); /* below the budget: gathered */
		assert_int_equal(rc_first, SL_OK);
		sl_alloc_fail_after(fail_at, 0);
		rc_second = put(&s, second, "abcdefghij", 10); /* passes it: commits both */
		sl_alloc_fail_after(-1, 0);
		done = rc_second == SL_OK;
		rc_flush = s.ops->flush(s.self, note_failed, &refused);
		sl_sink_close(&s);

		assert_int_equal(sl_store_open(&store, root, NULL), SL_OK);
		if (rc_flush == SL_OK) {
			assert_true(store_has(store, first, "0123456789"));
			if (rc_second == SL_OK)
				assert_true(store_has(store, second, "abcdefghij"));
		} else {
			flush_failed++;
		}
		sl_store_free(store);
	}
	assert_true(flush_failed > 0); /* some injected failure hit the early commit */
	assert_int_equal(refused.n, 0);
	tu_rmtree(root);
	free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_dir_sink),
	        cmocka_unit_test(test_node_sink_local),
	        cmocka_unit_test(test_node_sink_early_commit_failure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
