/*
 * The S3 sink and fetcher against a real s3rver (scripts/services.sh), and
 * through tests/tools/faultproxy.js for what s3rver cannot do by itself:
 * answer 500 or 503 SlowDown, and check V4 signatures (s3rver 3.7.1 checks
 * the access key id and the clock, but not the signature).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "services.h"
#include "sluice/connect.h"

#define MIB ((size_t)1024 * 1024)

static tu_services svc;
static char vhost_endpoint[300];

typedef struct proxy {
	pid_t pid;
	int port;
	char control[1100];
	char log[1100];
	char endpoint[64];
} proxy;

static int setup(void **state)
{
	(void)state;
	if (tu_services_start(&svc, "s3") != 0) {
		fprintf(stderr, "s3_test: could not start s3rver (scripts/deps.sh?)\n");
		return -1;
	}
	/* s3rver takes Host "<bucket>.s3.<service endpoint>" as virtual-hosted. */
	snprintf(vhost_endpoint, sizeof(vhost_endpoint), "http://s3.localhost:%d", svc.s3_port);
	sl_log_set_level(SL_LOG_ERROR);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (getenv("SLUICE_KEEP_SERVICES") != NULL) {
		fprintf(stderr, "s3_test: services left running in %s\n", svc.dir);
		return 0;
	}
	tu_services_stop(&svc);
	return 0;
}

static sl_s3_config config(const char *endpoint, const char *bucket)
{
	sl_s3_config c;
	sl_s3_config_init(&c);
	c.endpoint = endpoint;
	c.bucket = bucket;
	c.access_key_id = "S3RVER";
	c.secret_access_key = "S3RVER";
	c.timeout_ms = 20000;
	c.part_size = 5 * MIB;
	return c;
}

static uint8_t *random_bytes(size_t n, uint64_t seed)
{
	uint8_t *p = malloc(n ? n : 1);
	assert_non_null(p);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(sl_xorshift64(&seed) >> 24);
	return p;
}

/* begin, write in chunks of `chunk` bytes, commit. */
static int put_object(sl_sink *sink, const char *key, const uint8_t *data, size_t size,
                      size_t chunk)
{
	void *upload = NULL;
	int rc = sink->ops->begin(sink->self, key, size, &upload);
	if (rc != SL_OK)
		return rc;
	for (size_t off = 0; off < size; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;
		if ((rc = sink->ops->write(sink->self, upload, data + off, n)) != SL_OK) {
			sink->ops->abort(sink->self, upload);
			return rc;
		}
	}
	return sink->ops->commit(sink->self, upload);
}

/* Read object_key back in parts of `cap` bytes and compare. */
static void expect_object(sl_fetcher *f, const char *object_key, const uint8_t *want, size_t size,
                          size_t cap)
{
	sl_row row = {.id = "00000000-0000-0000-0000-000000000001"};
	const uint8_t *buf = NULL;
	uint64_t offset = 0, total = 0;
	size_t n_read = 0, reads = 0;

	row.object_key = (char *)object_key;
	do {
		int rc = f->ops->read(f->self, &row, offset, cap, &buf, &n_read, &total);
		if (rc != SL_OK)
			fail_msg("read %s at %llu: %s", object_key, (unsigned long long)offset,
			         sl_error_last()->message);
		assert_int_equal(total, size);
		assert_true(n_read <= cap);
		assert_memory_equal(buf, want + offset, n_read);
		offset += n_read;
		reads++;
	} while (offset < total && n_read > 0);
	assert_int_equal(offset, size);
	if (size > cap)
		assert_true(reads >= 2);
}

static int fetch_error(sl_fetcher *f, const char *object_key)
{
	sl_row row = {.id = "00000000-0000-0000-0000-000000000002"};
	const uint8_t *data;
	size_t n_read;
	uint64_t total;
	row.object_key = (char *)object_key;
	return f->ops->read(f->self, &row, 0, 64, &data, &n_read, &total);
}

static size_t uploads_left(const char *bucket)
{
	char path[1200];
	size_t n = 0;
	struct dirent *e;
	DIR *d;

	/* s3rver keeps each multipart upload in <bucket>/._S3rver_uploads/<id>. */
	snprintf(path, sizeof(path), "%s/s3/%s/._S3rver_uploads", svc.dir, bucket);
	if ((d = opendir(path)) == NULL)
		return 0;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* ------------------------------------------------------------- proxy */

static void set_mode(const proxy *p, const char *mode)
{
	char tmp[1200];
	snprintf(tmp, sizeof(tmp), "%s.tmp", p->control);
	FILE *f = fopen(tmp, "w");
	assert_non_null(f);
	fprintf(f, "%s\n", mode);
	fclose(f);
	assert_int_equal(rename(tmp, p->control), 0);
}

static void proxy_start(proxy *p, const char *name)
{
	char upstream[64], script[1200], line[128];
	int out[2];
	const char *tests = getenv("SLUICE_TEST_DATA");

	memset(p, 0, sizeof(*p));
	snprintf(p->control, sizeof(p->control), "%s/%s.control", svc.dir, name);
	snprintf(p->log, sizeof(p->log), "%s/%s.log", svc.dir, name);
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%d", svc.s3_port);
	snprintf(script, sizeof(script), "%s/tools/faultproxy.js", tests ? tests : "tests");
	set_mode(p, "pass");
	assert_int_equal(pipe(out), 0);
	p->pid = fork();
	assert_true(p->pid >= 0);
	if (p->pid == 0) {
		FILE *log = fopen(p->log, "w");
		if (log == NULL)
			_exit(127);
		dup2(out[1], 1);
		dup2(fileno(log), 2);
		close(out[0]);
		execlp("node", "node", script, "--upstream", upstream, "--control", p->control,
		       "--sigv4-secret", "S3RVER", (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	FILE *f = fdopen(out[0], "r");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof(line), f));
	assert_int_equal(sscanf(line, "listening %d", &p->port), 1);
	fclose(f);
	snprintf(p->endpoint, sizeof(p->endpoint), "http://127.0.0.1:%d", p->port);
}

static void proxy_stop(proxy *p)
{
	int status;
	kill(p->pid, SIGTERM);
	waitpid(p->pid, &status, 0);
}

/* Lines of the proxy log that start with prefix. */
static int proxy_lines(const proxy *p, const char *prefix)
{
	char line[2048];
	int n = 0;
	FILE *f = fopen(p->log, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		n += strncmp(line, prefix, strlen(prefix)) == 0;
	fclose(f);
	return n;
}

/* The proxy logs a request after answering it, so its line can trail the
 * answer: wait (up to 3 s) until `want` lines are there, and no more. */
static int proxy_count(const proxy *p, const char *prefix, int want)
{
	int n = proxy_lines(p, prefix);
	for (int i = 0; i < 300 && n < want; i++) {
		sl_sleep_ms(10);
		n = proxy_lines(p, prefix);
	}
	return n;
}

/* ------------------------------------------------------------- tests */

static void test_config(void **state)
{
	(void)state;
	sl_s3_config c;
	sl_sink sink;

	sl_s3_config_init(&c);
	assert_string_equal(c.region, "us-east-1");
	assert_int_equal(c.path_style, 1);
	assert_int_equal(c.timeout_ms, 60000);
	assert_int_equal(c.max_retries, 6);
	assert_int_equal(c.part_size, 8 * MIB);
	assert_int_equal(c.concurrency, 16);
	assert_int_equal(c.clock_offset_ms, 0);

	c = config(svc.s3_endpoint, "dest");
	c.part_size = 5 * MIB - 1;
	assert_int_equal(sl_s3_sink_open(&sink, &c), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "5 MiB"));
	c = config("ftp://127.0.0.1:1", "dest");
	assert_int_equal(sl_s3_sink_open(&sink, &c), SL_EINVAL);
	c = config("http://127.0.0.1:1/some/path", "dest");
	assert_int_equal(sl_s3_sink_open(&sink, &c), SL_EINVAL);
}

static void roundtrip(const char *endpoint, int path_style, const char *prefix)
{
	sl_s3_config c = config(endpoint, "dest");
	sl_sink sink;
	sl_fetcher fetcher;
	const size_t size = 100000;
	uint8_t *data = random_bytes(size, 42);
	char full[256];

	c.path_style = path_style;
	c.prefix = prefix;
	assert_int_equal(sl_s3_sink_open(&sink, &c), SL_OK);
	c.prefix = NULL;
	assert_int_equal(sl_s3_fetcher_open(&fetcher, &c), SL_OK);
	assert_string_equal(sink.ops->kind, "s3");

	/* One chunk holds the object: PUT straight from it. A key that needs encoding. */
	const char *key = "dir/hello world+=&$@ \xc3\xa9~.bin";
	snprintf(full, sizeof(full), "%s%s", prefix ? prefix : "", key);
	if (put_object(&sink, key, data, size, size) != SL_OK)
		fail_msg("put: %s", sl_error_last()->message);
	expect_object(&fetcher, full, data, size, 30000); /* 4 ranged GETs */
	expect_object(&fetcher, full, data, size, size);  /* 1 exact */

	/* Odd chunks: copied, then one PUT. */
	snprintf(full, sizeof(full), "%s%s", prefix ? prefix : "", "chunks");
	assert_int_equal(put_object(&sink, "chunks", data, 7777, 1000), SL_OK);
	expect_object(&fetcher, full, data, 7777, 4096);

	/* The same bytes again: idempotent. */
	assert_int_equal(put_object(&sink, "chunks", data, 7777, 7777), SL_OK);
	expect_object(&fetcher, full, data, 7777, 8000);

	/* An empty object: begin and commit only. */
	snprintf(full, sizeof(full), "%s%s", prefix ? prefix : "", "empty");
	assert_int_equal(put_object(&sink, "empty", data, 0, 1), SL_OK);
	expect_object(&fetcher, full, data, 0, 100);

	assert_int_equal(sink.ops->flush(sink.self, NULL, NULL), SL_OK);
	sl_sink_close(&sink);
	sl_fetcher_close(&fetcher);
	free(data);
}

static void test_path_style(void **state)
{
	(void)state;
	roundtrip(svc.s3_endpoint, 1, NULL);
}

static void test_virtual_hosted(void **state)
{
	(void)state;
	roundtrip(vhost_endpoint, 0, "vhost/");
	/* The object landed in the bucket (under a prefix no other test
	 * writes): read it path-style. */
	sl_s3_config c = config(svc.s3_endpoint, "dest");
	sl_fetcher f;
	uint8_t *data = random_bytes(7777, 42);
	assert_int_equal(sl_s3_fetcher_open(&f, &c), SL_OK);
	expect_object(&f, "vhost/chunks", data, 7777, 7777);
	sl_fetcher_close(&f);
	free(data);
}

static void test_prefix(void **state)
{
	(void)state;
	roundtrip(svc.s3_endpoint, 1, "pre/fix-");
	sl_s3_config c = config(svc.s3_endpoint, "dest");
	sl_fetcher f;
	assert_int_equal(sl_s3_fetcher_open(&f, &c), SL_OK);
	assert_int_equal(fetch_error(&f, "pre/chunks"), SL_ENOTFOUND);
	sl_fetcher_close(&f);
}

/* Read one object from the bucket `bucket` names (NULL: the fetcher's). */
static int fetch_from(sl_fetcher *f, const char *bucket, const char *object_key, uint8_t *out,
                      size_t cap, size_t *n_read)
{
	sl_row row = {.id = "00000000-0000-0000-0000-000000000003"};
	const uint8_t *data;
	uint64_t total;
	int rc;

	row.object_key = (char *)object_key;
	row.bucket = (char *)bucket;
	if ((rc = f->ops->read(f->self, &row, 0, cap, &data, n_read, &total)) == SL_OK) {
		assert_int_equal(total, *n_read);
		memcpy(out, data, *n_read);
	}
	return rc;
}

/* One fetcher reads each row from the bucket the row names, path-style,
 * virtual-hosted and through a proxy that checks every signature. */
static void test_row_bucket(void **state)
{
	(void)state;
	const char *endpoints[] = {svc.s3_endpoint, vhost_endpoint, NULL};
	uint8_t got[64];
	size_t n = 0;
	sl_sink sink;
	proxy p;

	for (int i = 0; i < 2; i++) {
		sl_s3_config c = config(svc.s3_endpoint, i == 0 ? "dest" : "source");
		assert_int_equal(sl_s3_sink_open(&sink, &c), SL_OK);
		assert_int_equal(put_object(&sink, "row-bucket/obj",
		                            (const uint8_t *)(i ? "in source" : "in dest"),
		                            i ? 9 : 7, 16),
		                 SL_OK);
		sl_sink_close(&sink);
	}
	proxy_start(&p, "rowbucket");
	set_mode(&p, "sigv4");
	endpoints[2] = p.endpoint;
	for (int e = 0; e < 3; e++) {
		sl_s3_config c = config(endpoints[e], "dest");
		sl_fetcher f;
		c.path_style = e != 1;
		assert_int_equal(sl_s3_fetcher_open(&f, &c), SL_OK);
		for (int round = 0; round < 2;
		     round++) { /* back and forth on one connection pool */
			assert_int_equal(
			        fetch_from(&f, NULL, "row-bucket/obj", got, sizeof(got), &n),
			        SL_OK);
			assert_memory_equal(got, "in dest", n);
			assert_int_equal(
			        fetch_from(&f, "source", "row-bucket/obj", got, sizeof(got), &n),
			        SL_OK);
			assert_memory_equal(got, "in source", n);
			assert_int_equal(
			        fetch_from(&f, "dest", "row-bucket/obj", got, sizeof(got), &n),
			        SL_OK);
			assert_memory_equal(got, "in dest", n);
		}
		assert_int_equal(
		        fetch_from(&f, "no-such-bucket", "row-bucket/obj", got, sizeof(got), &n),
		        SL_ENOTFOUND);
		assert_non_null(strstr(sl_error_last()->message, "no-such-bucket"));
		assert_int_equal(fetch_from(&f, "a/b", "row-bucket/obj", got, sizeof(got), &n),
		                 SL_EINVAL);
		assert_non_null(strstr(sl_error_last()->message, "not a bucket name"));
		assert_int_equal(fetch_from(&f, "evil.com:80 x", "k", got, sizeof(got), &n),
		                 SL_EINVAL);
		sl_fetcher_close(&f);
	}
	assert_int_equal(proxy_count(&p, "sigv4 GET /source/row-bucket/obj 206", 2), 2);
	proxy_stop(&p);

	sl_s3_config c = config(svc.s3_endpoint, "bad bucket");
	sl_fetcher f;
	assert_int_equal(sl_s3_fetcher_open(&f, &c), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "s3: bucket: 'bad bucket' is not"));
}

static void test_multipart(void **state)
{
	(void)state;
	sl_s3_config c = config(svc.s3_endpoint, "dest");
	sl_sink sink;
	sl_fetcher fetcher;
	const size_t size = 12 * MIB + 12345;
	uint8_t *data = random_bytes(size, 7);

	assert_int_equal(sl_s3_sink_open(&sink, &c), SL_OK);
	assert_int_equal(sl_s3_fetcher_open(&fetcher, &c), SL_OK);
	/* Chunks of part_size, as the pipeline writes: 3 parts sent without copies. */
	if (put_object(&sink, "big/object", data, size, 5 * MIB) != SL_OK)
		fail_msg("multipart: %s", sl_error_last()->message);
	expect_object(&fetcher, "big/object", data, size, 4 * MIB);
	/* Chunks that straddle parts: buffered into 5 MiB parts. */
	if (put_object(&sink, "big/odd", data, size, 3 * MIB + 1) != SL_OK)
		fail_msg("multipart: %s", sl_error_last()->message);
	expect_object(&fetcher, "big/odd", data, size, 8 * MIB);
	assert_int_equal(uploads_left("dest"), 0);
	sl_sink_close(&sink);
	sl_fetcher_close(&fetcher);
	free(data);
}

static void test_abort(void **state)
{
	(void)state;
	proxy p;
	sl_sink sink;
	void *upload = NULL;
	const size_t size = 11 * MIB;
	uint8_t *data = random_bytes(size, 9);

	proxy_start(&p, "abort");
	sl_s3_config c = config(p.endpoint, "dest");
	c.max_retries = 0;
	assert_int_equal(sl_s3_sink_open(&sink, &c), SL_OK);

	/* abort() after one part: AbortMultipartUpload with the upload's id. */
	assert_int_equal(sink.ops->begin(sink.self, "aborted/one", size, &upload), SL_OK);
	assert_int_equal(sink.ops->write(sink.self, upload, data, 5 * MIB), SL_OK);
	sink.ops->abort(sink.self, upload);
	assert_int_equal(proxy_count(&p, "pass DELETE /dest/aborted/one?uploadId=", 1), 1);

	/* A part that fails: the upload is aborted by write itself. */
	upload = NULL;
	assert_int_equal(sink.ops->begin(sink.self, "aborted/two", size, &upload), SL_OK);
	assert_int_equal(sink.ops->write(sink.self, upload, data, 5 * MIB), SL_OK);
	set_mode(&p, "status500:1 partNumber=2");
	assert_int_equal(sink.ops->write(sink.self, upload, data + 5 * MIB, 5 * MIB), SL_EIO);
	assert_non_null(strstr(sl_error_last()->cause, "HTTP 500 InternalError"));
	assert_int_equal(proxy_count(&p, "pass DELETE /dest/aborted/two?uploadId=", 1), 1);
	sink.ops->abort(sink.self, upload); /* already aborted: nothing more is sent */
	sl_sleep_ms(200);
	assert_int_equal(proxy_count(&p, "pass DELETE /dest/aborted/two?uploadId=", 1), 1);

	/* Neither object exists. */
	sl_fetcher f;
	assert_int_equal(sl_s3_fetcher_open(&f, &c), SL_OK);
	assert_int_equal(fetch_error(&f, "aborted/one"), SL_ENOTFOUND);
	assert_int_equal(fetch_error(&f, "aborted/two"), SL_ENOTFOUND);
	sl_fetcher_close(&f);

	/* s3rver 3.7.1 answers AbortMultipartUpload with 405 MethodNotAllowed and
	 * keeps the parts; against it we can only check the request was made. */
	print_message("s3_test: multipart uploads s3rver kept after abort: %zu\n",
	              uploads_left("dest"));
	sl_sink_close(&sink);
	proxy_stop(&p);
	free(data);
}

static void test_signature_checked(void **state)
{
	(void)state;
	proxy p;
	sl_sink sink;
	sl_fetcher f;
	const size_t size = 10 * MIB + 1;
	uint8_t *data = random_bytes(size, 11);

	/* Every request of every kind passes an independent V4 check. */
	proxy_start(&p, "sigv4");
	set_mode(&p, "sigv4");
	sl_s3_config c = config(p.endpoint, "dest");
	c.prefix = "signed/";
	assert_int_equal(sl_s3_sink_open(&sink, &c), SL_OK);
	c.prefix = NULL;
	assert_int_equal(sl_s3_fetcher_open(&f, &c), SL_OK);
	if (put_object(&sink, "multi part+key=1", data, size, 5 * MIB) != SL_OK)
		fail_msg("signed multipart: %s", sl_error_last()->message);
	assert_int_equal(put_object(&sink, "small & odd", data, 1000, 1000), SL_OK);
	expect_object(&f, "signed/multi part+key=1", data, size, 3 * MIB);
	expect_object(&f, "signed/small & odd", data, 1000, 300);
	assert_true(proxy_count(&p, "sigv4 ", 10) >= 10);
	assert_int_equal(proxy_count(&p, "sigv4 PUT /dest/signed/small%20%26%20odd 200", 1), 1);
	sl_sink_close(&sink);
	sl_fetcher_close(&f);

	/* The wrong secret is refused, and nothing is retried. */
	c.secret_access_key = "not-the-secret";
	assert_int_equal(sl_s3_sink_open(&sink, &c), SL_OK);
	assert_int_equal(put_object(&sink, "refused", data, 10, 10), SL_EAUTH);
	assert_non_null(strstr(sl_error_last()->message, "secret access key does not match"));
	assert_string_equal(sl_error_last()->cause, "HTTP 403 SignatureDoesNotMatch");
	assert_int_equal(proxy_count(&p, "sigv4 PUT /dest/refused 403", 1), 1);
	sl_sink_close(&sink);
	proxy_stop(&p);
	free(data);
}

static void test_auth_errors(void **state)
{
	(void)state;
	sl_s3_config c = config(svc.s3_endpoint, "dest");
	sl_sink sink;
	const uint8_t byte = 'x';

	/* s3rver itself knows the access key id. */
	c.access_key_id = "NOBODY";
	assert_int_equal(sl_s3_sink_open(&sink, &c), SL_OK);
	assert_int_equal(put_object(&sink, "k", &byte, 1, 1), SL_EAUTH);
	assert_non_null(strstr(sl_error_last()->message, "access key id is unknown"));
	assert_string_equal(sl_error_last()->cause, "HTTP 403 InvalidAccessKeyId");
	sl_sink_close(&sink);

	/* ... and the clock: an hour ahead. */
	c = config(svc.s3_endpoint, "dest");
	c.clock_offset_ms = 3600 * 1000;
	assert_int_equal(sl_s3_sink_open(&sink, &c), SL_OK);
	assert_int_equal(put_object(&sink, "k", &byte, 1, 1), SL_EAUTH);
	const sl_error *e = sl_error_last();
	assert_string_equal(e->cause, "HTTP 403 RequestTimeTooSkewed");
	assert_non_null(strstr(e->message, "local clock"));
	int skew = -1;
	const char *is = strstr(e->message, " is ");
	assert_non_null(is);
	assert_int_equal(sscanf(is, " is %d s ahead of", &skew), 1);
	assert_true(skew >= 3598 && skew <= 3602);
	sl_sink_close(&sink);
}

static void test_not_found(void **state)
{
	(void)state;
	sl_s3_config c = config(svc.s3_endpoint, "source");
	sl_fetcher f;
	sl_sink sink;
	const uint8_t byte = 'x';

	assert_int_equal(sl_s3_fetcher_open(&f, &c), SL_OK);
	assert_int_equal(fetch_error(&f, "no/such/object"), SL_ENOTFOUND);
	assert_string_equal(sl_error_last()->cause, "HTTP 404 NoSuchKey");
	sl_fetcher_close(&f);

	c.bucket = "no-such-bucket";
	assert_int_equal(sl_s3_fetcher_open(&f, &c), SL_OK);
	assert_int_equal(fetch_error(&f, "k"), SL_ENOTFOUND);
	assert_non_null(strstr(sl_error_last()->message, "bucket 'no-such-bucket' does not exist"));
	sl_fetcher_close(&f);
	assert_int_equal(sl_s3_sink_open(&sink, &c), SL_OK);
	assert_int_equal(put_object(&sink, "k", &byte, 1, 1), SL_ENOTFOUND);
	assert_non_null(strstr(sl_error_last()->message, "no-such-bucket"));
	sl_sink_close(&sink);
}

static void test_retries(void **state)
{
	(void)state;
	proxy p;
	sl_sink sink;
	sl_fetcher f;
	const size_t size = 5000;
	uint8_t *data = random_bytes(size, 13);

	proxy_start(&p, "retries");
	sl_s3_config c = config(p.endpoint, "dest");
	assert_int_equal(sl_s3_sink_open(&sink, &c), SL_OK);
	assert_int_equal(sl_s3_fetcher_open(&f, &c), SL_OK);

	/* Two SlowDowns with Retry-After: 1, then success; the wait is shared. */
	set_mode(&p, "slowdown503:2 /dest/");
	uint64_t t0 = sl_clock_mono_ns();
	if (put_object(&sink, "retried/slowdown", data, size, size) != SL_OK)
		fail_msg("slowdown: %s", sl_error_last()->message);
	double slowdown_s = (double)(sl_clock_mono_ns() - t0) / 1e9;
	assert_int_equal(proxy_count(&p, "slowdown503 PUT /dest/retried/slowdown 503", 2), 2);
	assert_true(slowdown_s >= 1.0); /* Retry-After honoured */
	expect_object(&f, "retried/slowdown", data, size, size);

	/* Three 500s on the read, then the bytes. */
	set_mode(&p, "status500:3 /dest/");
	t0 = sl_clock_mono_ns();
	expect_object(&f, "retried/slowdown", data, size, 2000);
	double status500_s = (double)(sl_clock_mono_ns() - t0) / 1e9;
	assert_int_equal(proxy_count(&p, "status500 GET /dest/retried/slowdown 500", 3), 3);
	print_message("s3_test: 2x 503 SlowDown took %.2f s, 3x 500 took %.2f s\n", slowdown_s,
	              status500_s);

	/* Out of retries: the last error, with its cause. */
	sl_sink_close(&sink);
	c.max_retries = 2;
	assert_int_equal(sl_s3_sink_open(&sink, &c), SL_OK);
	set_mode(&p, "status500 /dest/");
	assert_int_equal(put_object(&sink, "retried/never", data, 10, 10), SL_EIO);
	assert_string_equal(sl_error_last()->cause, "HTTP 500 InternalError");
	assert_int_equal(proxy_count(&p, "status500 PUT /dest/retried/never 500", 3), 3);

	/* A connection that never answers: a timeout, retried, then SL_ETIMEOUT. */
	sl_sink_close(&sink);
	c.max_retries = 1;
	c.timeout_ms = 300;
	assert_int_equal(sl_s3_sink_open(&sink, &c), SL_OK);
	set_mode(&p, "stall /dest/");
	assert_int_equal(put_object(&sink, "retried/stall", data, 10, 10), SL_ETIMEOUT);
	assert_int_equal(proxy_count(&p, "stall PUT /dest/retried/stall", 2), 2);
	sl_sink_close(&sink);
	sl_fetcher_close(&f);
	proxy_stop(&p);
	free(data);
}

typedef struct worker {
	sl_sink *sink;
	int index;
	int rc;
} worker;

static void *worker_main(void *arg)
{
	worker *w = arg;
	char key[64];
	for (int i = 0; i < 5 && w->rc == SL_OK; i++) {
		uint8_t *data = random_bytes(20000, (uint64_t)(w->index * 100 + i + 1));
		snprintf(key, sizeof(key), "shared/%d-%d", w->index, i);
		w->rc = put_object(w->sink, key, data, 20000, 20000);
		free(data);
	}
	return NULL;
}

static void test_shared_sink(void **state)
{
	(void)state;
	sl_s3_config c = config(svc.s3_endpoint, "dest");
	sl_sink sink;
	sl_fetcher f;
	worker workers[4];
	pthread_t threads[4];
	char key[64];

	c.concurrency = 2; /* fewer pooled handles than threads */
	assert_int_equal(sl_s3_sink_open(&sink, &c), SL_OK);
	for (int i = 0; i < 4; i++) {
		workers[i] = (worker){&sink, i, SL_OK};
		assert_int_equal(pthread_create(&threads[i], NULL, worker_main, &workers[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(threads[i], NULL);
		assert_int_equal(workers[i].rc, SL_OK);
	}
	sl_sink_close(&sink);
	assert_int_equal(sl_s3_fetcher_open(&f, &c), SL_OK);
	for (int w = 0; w < 4; w++) {
		for (int i = 0; i < 5; i++) {
			uint8_t *data = random_bytes(20000, (uint64_t)(w * 100 + i + 1));
			snprintf(key, sizeof(key), "shared/%d-%d", w, i);
			expect_object(&f, key, data, 20000, 20000);
			free(data);
		}
	}
	sl_fetcher_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_config),         cmocka_unit_test(test_path_style),
	        cmocka_unit_test(test_virtual_hosted), cmocka_unit_test(test_prefix),
	        cmocka_unit_test(test_row_bucket),     cmocka_unit_test(test_multipart),
	        cmocka_unit_test(test_abort),          cmocka_unit_test(test_signature_checked),
	        cmocka_unit_test(test_auth_errors),    cmocka_unit_test(test_not_found),
	        cmocka_unit_test(test_retries),        cmocka_unit_test(test_shared_sink),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
