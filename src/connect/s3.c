/*
 * S3 over libcurl with SigV4 (connect/sigv4.c): the sink and the fetcher.
 *
 * One s3_client holds the parsed endpoint, the credentials, a pool of idle
 * curl easy handles and the shared SlowDown delay. A request takes a handle
 * from the pool (or makes one), runs it on the caller's thread with
 * curl_easy_perform, and puts it back, so at most `concurrency` handles and
 * their kept-alive connections stay open between requests. The pool and the
 * delay are the only mutable shared state and sit under one mutex; the
 * sink is shared by every worker, a fetcher by one.
 *
 * Every request goes through s3_request, which
 *   1. waits the shared SlowDown delay,
 *   2. signs (x-amz-date = local clock + clock_offset_ms, x-amz-content-sha256
 *      = hex SHA-256 of the body) and sends with a timeout,
 *   3. on a connection error, a timeout, 408, 500, 502, 503, 504 or 429
 *      sleeps an exponential backoff with jitter and tries again, up to
 *      max_retries times; 503 SlowDown and 429 also grow the shared delay
 *      (to at least Retry-After), which every success shrinks again;
 *   4. maps anything else to a code with the HTTP status and the S3 error
 *      Code from the XML body as the cause: 403 -> SL_EAUTH (a skewed clock
 *      says by how many seconds, from the server's Date), 404 NoSuchKey and
 *      NoSuchBucket -> SL_ENOTFOUND.
 * A 2xx body goes into the caller's fixed buffer (more than it holds is
 * SL_ETOOLARGE); an error body keeps its first ERROR_BODY_MAX bytes.
 *
 * Sink uploads: an object of at most part_size bytes is one PUT, sent from
 * the caller's chunk when one chunk is the whole object, else from a copy.
 * A larger object is a multipart upload created at begin; each part_size
 * bytes become one UploadPart (sent straight from the chunk when the chunk
 * is exactly a part), and commit sends CompleteMultipartUpload. Any failure
 * of a part or of the completion aborts the multipart upload at once, so
 * no parts are left behind; abort() does the same for a live upload.
 * commit and abort both free the upload, whatever they return.
 *
 * Buckets. A client has one bucket, but a request may name another
 * (s3_call.bucket): the S3-mode fetcher reads each row from the bucket its
 * row names, so one fetcher serves objects spread over several buckets.
 * The bucket goes into the path (path style, Host is the endpoint's) or
 * into the Host header (virtual-hosted style, "<bucket>.<endpoint host>"),
 * and both are signed, so the Host header is built for every request.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "connect/s3_response.h"
#include "connect/sigv4.h"
#include "sluice/connect.h"

#define MIB                 ((size_t)1024 * 1024)
#define DEFAULT_PART_SIZE   (8 * MIB)
#define MIN_PART_SIZE       (5 * MIB)
#define MAX_PARTS           10000u
#define ERROR_BODY_MAX      8192
#define XML_BODY_MAX        ((size_t)64 * 1024)
#define HEADER_VALUE_MAX    256
#define MAX_CONNECT_MS      10000u
#define BACKOFF_BASE_MS     100u
#define BACKOFF_MAX_MS      20000u
#define SLOWDOWN_MIN_MS     200u
#define SLOWDOWN_MAX_MS     60000u
#define SLOWDOWN_FLOOR_MS   20u /* below this the shared delay drops to 0 */
#define DEFAULT_CONCURRENCY 16u
#define DEFAULT_TIMEOUT_MS  60000u
#define DEFAULT_MAX_RETRIES 6u
#define MAX_HEADERS         8
#define DESCRIBE_MAX        200

typedef struct s3_client {
	char *scheme;    /* "http" or "https" */
	char *authority; /* the endpoint's host[:port]: "127.0.0.1:9000", "s3.localhost:9000" */
	char *bucket;    /* a request's bucket unless it names another */
	char *region;
	char *prefix; /* "" when none */
	char *access_key_id;
	char *secret_access_key;
	int path_style;
	int loopback_name; /* host is localhost or *.localhost: connect to 127.0.0.1 */
	uint32_t timeout_ms;
	uint32_t max_retries;
	size_t part_size;
	size_t concurrency;
	int64_t clock_offset_ms;

	pthread_mutex_t lock; /* guards everything below */
	CURL **idle;
	size_t n_idle;
	uint64_t slowdown_ms;       /* every request waits this long before sending */
	uint64_t slowdown_grown_ns; /* when slowdown_ms last grew (monotonic) */
	uint64_t rng;
} s3_client;

/* One HTTP exchange: what to send and what came back. */
typedef struct s3_call {
	const char *method;
	const char *bucket; /* NULL: the client's */
	const char *key;    /* full object key, unencoded */
	const sl_sigv4_param *query;
	size_t n_query;
	const uint8_t *body;
	size_t body_len;
	const char *content_type; /* NULL: none */
	const char *range;        /* NULL or "bytes=a-b" */
	uint8_t *resp;            /* a 2xx body goes here */
	size_t resp_cap;

	long status;
	size_t resp_len;
	int overflow;
	char error_body[ERROR_BODY_MAX + 1];
	size_t error_len;
	char etag[HEADER_VALUE_MAX];
	char content_range[HEADER_VALUE_MAX];
	char date[HEADER_VALUE_MAX];
	int64_t content_length; /* -1: none */
	int64_t retry_after_s;  /* -1: none */
	CURLcode curl_rc;
	char curl_err[CURL_ERROR_SIZE];
} s3_call;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---------------------------------------------------------- client life */

void sl_s3_config_init(sl_s3_config *c)
{
	memset(c, 0, sizeof(*c));
	c->region = "us-east-1";
	c->prefix = "";
	c->path_style = 1;
	c->timeout_ms = DEFAULT_TIMEOUT_MS;
	c->max_retries = DEFAULT_MAX_RETRIES;
	c->part_size = DEFAULT_PART_SIZE;
	c->concurrency = DEFAULT_CONCURRENCY;
}

static void client_free(s3_client *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n_idle; i++)
		curl_easy_cleanup(c->idle[i]);
	sl_free(c->idle);
	pthread_mutex_destroy(&c->lock);
	sl_free(c->scheme);
	sl_free(c->authority);
	sl_free(c->bucket);
	sl_free(c->region);
	sl_free(c->prefix);
	sl_free(c->access_key_id);
	if (c->secret_access_key != NULL)
		memset(c->secret_access_key, 0, strlen(c->secret_access_key));
	sl_free(c->secret_access_key);
	sl_free(c);
}

static int ends_with(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);
	return n >= k && strncasecmp(s + n - k, suffix, k) == 0;
}

/* endpoint "scheme://host[:port][/]" -> scheme and authority. */
static int parse_endpoint(s3_client *c, const char *endpoint)
{
	const char *sep = strstr(endpoint, "://");
	const char *auth, *end, *host_end;
	int rc = SL_OK;

	if (sep == NULL || (strncmp(endpoint, "http", 4) != 0) ||
	    !(sep - endpoint == 4 || (sep - endpoint == 5 && endpoint[4] == 's')))
		return sl_error_set(SL_EINVAL, "s3: endpoint '%s' is not http(s)://host[:port]",
		                    endpoint);
	auth = sep + 3;
	end = auth + strcspn(auth, "/?#");
	if (end == auth || (*end != '\0' && strcmp(end, "/") != 0))
		return sl_error_set(SL_EINVAL,
		                    "s3: endpoint '%s' must be scheme://host[:port] with no path",
		                    endpoint);
	if (auth[0] == '[')
		host_end = strchr(auth, ']') ? strchr(auth, ']') + 1 : end;
	else
		host_end = auth + strcspn(auth, ":/");
	if (host_end > end)
		host_end = end;
	c->loopback_name =
	        ends_with(auth, (size_t)(host_end - auth), ".localhost") ||
	        ((size_t)(host_end - auth) == 9 && strncasecmp(auth, "localhost", 9) == 0);
	if ((c->scheme = sl_strndup(endpoint, (size_t)(sep - endpoint))) == NULL ||
	    (c->authority = sl_strndup(auth, (size_t)(end - auth))) == NULL)
		rc = SL_ENOMEM;
	return rc;
}

int sl_s3_bucket_name_check(const char *name)
{
	size_t n = name != NULL ? strlen(name) : 0;

	if (n == 0 || n > 255)
		return sl_error_set(SL_EINVAL, "'%.64s' is not a bucket name (1 to 255 bytes)",
		                    name != NULL ? name : "");
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_'))
			return sl_error_set(
			        SL_EINVAL,
			        "'%.64s' is not a bucket name (byte 0x%02x at %zu: only "
			        "letters, digits, '.', '-' and '_')",
			        name, ch, i);
	}
	return SL_OK;
}

static const char *call_bucket(const s3_client *c, const s3_call *call)
{
	return call->bucket != NULL ? call->bucket : c->bucket;
}

static int client_new(s3_client **out, const sl_s3_config *cfg)
{
	s3_client *c = NULL;
	int rc = SL_OK;

	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK)
		return sl_error_set_cause(SL_EINTERNAL, curl_easy_strerror(curl_init_rc),
		                          "s3: curl_global_init failed");
	if (cfg->endpoint == NULL || cfg->bucket == NULL || cfg->bucket[0] == '\0' ||
	    cfg->access_key_id == NULL || cfg->secret_access_key == NULL)
		return sl_error_set(SL_EINVAL, "s3: endpoint, bucket and credentials are required");
	if (cfg->part_size < MIN_PART_SIZE)
		return sl_error_set(SL_EINVAL, "s3: part_size %zu is below S3's minimum of 5 MiB",
		                    cfg->part_size);
	if ((c = sl_calloc(1, sizeof(*c))) == NULL)
		return SL_ENOMEM;
	if (pthread_mutex_init(&c->lock, NULL) != 0) {
		sl_free(c);
		return sl_error_set(SL_EINTERNAL, "s3: pthread_mutex_init failed");
	}
	c->path_style = cfg->path_style;
	c->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
	c->max_retries = cfg->max_retries;
	c->part_size = cfg->part_size;
	c->concurrency = cfg->concurrency ? cfg->concurrency : DEFAULT_CONCURRENCY;
	c->clock_offset_ms = cfg->clock_offset_ms;
	c->rng = (sl_clock_mono_ns() ^ (uint64_t)(uintptr_t)c) | 1;
	if (sl_s3_bucket_name_check(cfg->bucket) != SL_OK) {
		rc = sl_error_wrap("s3: bucket");
		goto cleanup;
	}
	if ((c->bucket = sl_strdup(cfg->bucket)) == NULL ||
	    (c->region = sl_strdup(cfg->region ? cfg->region : "us-east-1")) == NULL ||
	    (c->prefix = sl_strdup(cfg->prefix ? cfg->prefix : "")) == NULL ||
	    (c->access_key_id = sl_strdup(cfg->access_key_id)) == NULL ||
	    (c->secret_access_key = sl_strdup(cfg->secret_access_key)) == NULL ||
	    (c->idle = sl_calloc(c->concurrency, sizeof(CURL *))) == NULL) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	if ((rc = parse_endpoint(c, cfg->endpoint)))
		goto cleanup;
	*out = c;
	c = NULL;

cleanup:
	client_free(c);
	return rc;
}

/* ------------------------------------------------------- handle pool */

static CURL *handle_take(s3_client *c)
{
	CURL *h = NULL;

	pthread_mutex_lock(&c->lock);
	if (c->n_idle > 0)
		h = c->idle[--c->n_idle];
	pthread_mutex_unlock(&c->lock);
	if (h == NULL)
		h = curl_easy_init();
	else
		curl_easy_reset(h); /* keeps its connection cache */
	return h;
}

/* A handle whose transfer failed may hold a broken connection; curl drops
 * those itself, so every handle goes back unless the pool is full. */
static void handle_give(s3_client *c, CURL *h)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	if (c->n_idle < c->concurrency) {
		c->idle[c->n_idle++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	if (h != NULL)
		curl_easy_cleanup(h);
}

/* --------------------------------------------------- shared slow-down */

static uint64_t slowdown_current(s3_client *c)
{
	uint64_t ms;
	pthread_mutex_lock(&c->lock);
	ms = c->slowdown_ms;
	pthread_mutex_unlock(&c->lock);
	return ms;
}

static void slowdown_grow(s3_client *c, int64_t retry_after_s)
{
	uint64_t ms;
	uint64_t now = sl_clock_mono_ns();
	pthread_mutex_lock(&c->lock);
	/* Workers that were refused in the same burst count once: the delay
	 * doubles at most once per delay period. */
	ms = now - c->slowdown_grown_ns >= c->slowdown_ms * 1000000 ? c->slowdown_ms * 2
	                                                            : c->slowdown_ms;
	if (ms < SLOWDOWN_MIN_MS)
		ms = SLOWDOWN_MIN_MS;
	if (retry_after_s > 0 && (uint64_t)retry_after_s * 1000 > ms)
		ms = (uint64_t)retry_after_s * 1000;
	if (ms > SLOWDOWN_MAX_MS)
		ms = SLOWDOWN_MAX_MS;
	if (ms != c->slowdown_ms)
		c->slowdown_grown_ns = now;
	c->slowdown_ms = ms;
	pthread_mutex_unlock(&c->lock);
}

static void slowdown_shrink(s3_client *c)
{
	pthread_mutex_lock(&c->lock);
	c->slowdown_ms = c->slowdown_ms * 3 / 4;
	if (c->slowdown_ms < SLOWDOWN_FLOOR_MS)
		c->slowdown_ms = 0;
	pthread_mutex_unlock(&c->lock);
}

static uint64_t backoff_ms(s3_client *c, uint32_t attempt)
{
	uint64_t ms = BACKOFF_BASE_MS << (attempt < 10 ? attempt : 10), r;
	if (ms > BACKOFF_MAX_MS)
		ms = BACKOFF_MAX_MS;
	pthread_mutex_lock(&c->lock);
	r = sl_xorshift64(&c->rng);
	pthread_mutex_unlock(&c->lock);
	return ms / 2 + r % (ms / 2 + 1); /* jitter: half fixed, half random */
}

/* ------------------------------------------------------- one exchange */

static void copy_header_value(char *dst, const char *v, size_t n)
{
	while (n > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
		n--;
	if (n >= HEADER_VALUE_MAX)
		n = HEADER_VALUE_MAX - 1;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

static int header_is(const char *line, size_t n, const char *name, const char **value,
                     size_t *value_len)
{
	size_t k = strlen(name);
	if (n <= k || line[k] != ':' || strncasecmp(line, name, k) != 0)
		return 0;
	*value = line + k + 1;
	*value_len = n - k - 1;
	return 1;
}

static size_t on_header(char *line, size_t size, size_t count, void *userdata)
{
	s3_call *call = userdata;
	size_t n = size * count, vlen;
	const char *v;
	char tmp[HEADER_VALUE_MAX];

	if (n > 5 && strncmp(line, "HTTP/", 5) == 0) {
		/* A new response (after a 100 Continue, say): forget the last one's headers. */
		const char *sp = memchr(line, ' ', n);
		call->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		call->etag[0] = call->content_range[0] = call->date[0] = '\0';
		call->content_length = call->retry_after_s = -1;
	} else if (header_is(line, n, "ETag", &v, &vlen)) {
		copy_header_value(call->etag, v, vlen);
	} else if (header_is(line, n, "Content-Range", &v, &vlen)) {
		copy_header_value(call->content_range, v, vlen);
	} else if (header_is(line, n, "Date", &v, &vlen)) {
		copy_header_value(call->date, v, vlen);
	} else if (header_is(line, n, "Content-Length", &v, &vlen)) {
		copy_header_value(tmp, v, vlen);
		call->content_length = strtoll(tmp, NULL, 10);
	} else if (header_is(line, n, "Retry-After", &v, &vlen)) {
		copy_header_value(tmp, v, vlen);
		if (tmp[0] >= '0' && tmp[0] <= '9')
			call->retry_after_s = strtoll(tmp, NULL, 10);
	}
	return n;
}

static size_t on_body(char *data, size_t size, size_t count, void *userdata)
{
	s3_call *call = userdata;
	size_t n = size * count;

	if (call->status >= 200 && call->status < 300) {
		if (call->resp == NULL)
			return n; /* a body nobody asked for (PUT, DELETE): dropped */
		if (n > call->resp_cap - call->resp_len) {
			call->overflow = 1;
			return 0; /* curl aborts the transfer */
		}
		memcpy(call->resp + call->resp_len, data, n);
		call->resp_len += n;
	} else {
		size_t keep = ERROR_BODY_MAX - call->error_len;
		if (keep > n)
			keep = n;
		memcpy(call->error_body + call->error_len, data, keep);
		call->error_len += keep;
		call->error_body[call->error_len] = '\0';
	}
	return n;
}

static int append_path(sl_buf *b, const s3_client *c, const char *bucket, const char *key)
{
	int rc = SL_OK;
	if (c->path_style) {
		if ((rc = sl_buf_append_byte(b, '/')) || (rc = sl_buf_append_str(b, bucket)))
			return rc;
	}
	if ((rc = sl_buf_append_byte(b, '/')))
		return rc;
	return key ? sl_buf_append_str(b, key) : SL_OK;
}

#define SETOPT(h, opt, val)                                                                        \
	do {                                                                                       \
		if ((cc = curl_easy_setopt((h), (opt), (val))) != CURLE_OK)                        \
			goto curl_failed;                                                          \
	} while (0)

/* Sign and send once; *call gets the outcome. Returns an error only when the
 * request could not be made at all (memory, curl setup). */
static int perform_once(s3_client *c, s3_call *call, const char *payload_hash)
{
	sl_buf path = SL_BUF_INIT(SL_SIGV4_CANONICAL_MAX);
	sl_buf url = SL_BUF_INIT(SL_SIGV4_CANONICAL_MAX);
	sl_buf auth = SL_BUF_INIT(SL_SIGV4_CANONICAL_MAX);
	sl_buf line = SL_BUF_INIT(SL_SIGV4_CANONICAL_MAX);
	sl_buf host = SL_BUF_INIT(SL_SIGV4_CANONICAL_MAX);
	const char *bucket = call_bucket(c, call);
	char amz_date[SL_SIGV4_AMZ_DATE_LEN + 1];
	sl_sigv4_param headers[MAX_HEADERS];
	size_t n_headers = 0;
	struct curl_slist *list = NULL, *connect_to = NULL, *added;
	CURL *h = NULL;
	CURLcode cc = CURLE_OK;
	int rc = SL_OK;
	const sl_sigv4_credentials cred = {c->access_key_id, c->secret_access_key, c->region, "s3"};

	call->status = 0;
	call->resp_len = 0;
	call->overflow = 0;
	call->error_len = 0;
	call->error_body[0] = '\0';
	call->etag[0] = call->content_range[0] = call->date[0] = '\0';
	call->content_length = call->retry_after_s = -1;
	call->curl_rc = CURLE_OK;
	call->curl_err[0] = '\0';

	sl_sigv4_amz_date(amz_date, (uint64_t)((int64_t)sl_clock_wall_ms() + c->clock_offset_ms));
	if ((rc = c->path_style ? sl_buf_append_str(&host, c->authority)
	                        : sl_buf_printf(&host, "%s.%s", bucket, c->authority)))
		goto cleanup;
	headers[n_headers++] = (sl_sigv4_param){"Host", (const char *)host.data};
	headers[n_headers++] = (sl_sigv4_param){"x-amz-content-sha256", payload_hash};
	headers[n_headers++] = (sl_sigv4_param){"x-amz-date", amz_date};
	if (call->range != NULL)
		headers[n_headers++] = (sl_sigv4_param){"Range", call->range};
	const sl_sigv4_request req = {call->method, NULL,      call->query, call->n_query,
	                              headers,      n_headers, payload_hash};
	sl_sigv4_request signed_req = req;

	if ((rc = append_path(&path, c, bucket, call->key)))
		goto cleanup;
	signed_req.path = (const char *)path.data;
	if ((rc = sl_sigv4_authorization(&auth, &signed_req, &cred, amz_date)))
		goto cleanup;
	if ((rc = sl_buf_printf(&url, "%s://%s", c->scheme, (const char *)host.data)) ||
	    (rc = sl_sigv4_uri_encode(&url, (const char *)path.data, path.len, 1)))
		goto cleanup;
	if (call->n_query > 0 &&
	    ((rc = sl_buf_append_byte(&url, '?')) ||
	     (rc = sl_sigv4_canonical_query(&url, call->query, call->n_query))))
		goto cleanup;

	for (size_t i = 0; i < n_headers + 4; i++) {
		sl_buf_reset(&line);
		if (i < n_headers)
			rc = sl_buf_printf(&line, "%s: %s", headers[i].name, headers[i].value);
		else if (i == n_headers)
			rc = sl_buf_printf(&line, "Authorization: %s", (const char *)auth.data);
		else if (i == n_headers + 1)
			rc = sl_buf_append_str(&line, "Expect:"); /* no 100-continue round trip */
		else if (i == n_headers + 2)
			rc = call->content_type
			             ? sl_buf_printf(&line, "Content-Type: %s", call->content_type)
			             : sl_buf_append_str(&line, "Content-Type:");
		else
			rc = sl_buf_append_str(&line, "Accept:");
		if (rc)
			goto cleanup;
		if ((added = curl_slist_append(list, (const char *)line.data)) == NULL) {
			rc = sl_error_set(SL_ENOMEM, "s3: out of memory for headers");
			goto cleanup;
		}
		list = added;
	}
	if (c->loopback_name) {
		/* *.localhost is loopback (RFC 6761); do not depend on the resolver. */
		if ((connect_to = curl_slist_append(NULL, "::127.0.0.1:")) == NULL) {
			rc = sl_error_set(SL_ENOMEM, "s3: out of memory for headers");
			goto cleanup;
		}
	}

	if ((h = handle_take(c)) == NULL) {
		rc = sl_error_set(SL_ENOMEM, "s3: curl_easy_init failed");
		goto cleanup;
	}
	SETOPT(h, CURLOPT_URL, (const char *)url.data);
	SETOPT(h, CURLOPT_HTTPHEADER, list);
	SETOPT(h, CURLOPT_NOSIGNAL, 1L);
	SETOPT(h, CURLOPT_PATH_AS_IS, 1L);
	SETOPT(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
	SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS,
	       (long)(c->timeout_ms < MAX_CONNECT_MS ? c->timeout_ms : MAX_CONNECT_MS));
	SETOPT(h, CURLOPT_HEADERFUNCTION, on_header);
	SETOPT(h, CURLOPT_HEADERDATA, call);
	SETOPT(h, CURLOPT_WRITEFUNCTION, on_body);
	SETOPT(h, CURLOPT_WRITEDATA, call);
	SETOPT(h, CURLOPT_ERRORBUFFER, call->curl_err);
	SETOPT(h, CURLOPT_PROTOCOLS_STR, "http,https");
	if (connect_to != NULL)
		SETOPT(h, CURLOPT_CONNECT_TO, connect_to);
	if (strcmp(call->method, "GET") == 0) {
		SETOPT(h, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(call->method, "HEAD") == 0) {
		SETOPT(h, CURLOPT_NOBODY, 1L);
	} else if (strcmp(call->method, "DELETE") == 0) {
		SETOPT(h, CURLOPT_CUSTOMREQUEST, "DELETE");
	} else {
		/* PUT and POST: the body from memory, with a Content-Length. */
		SETOPT(h, CURLOPT_CUSTOMREQUEST, call->method);
		SETOPT(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)call->body_len);
		SETOPT(h, CURLOPT_POSTFIELDS, call->body ? (const char *)call->body : "");
	}
	call->curl_rc = curl_easy_perform(h);
	goto cleanup;

curl_failed:
	rc = sl_error_set_cause(SL_EINTERNAL, curl_easy_strerror(cc),
	                        "s3: curl_easy_setopt failed");
cleanup:
	if (h != NULL) {
		/* Drop pointers into this call before the handle is pooled. */
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
		handle_give(c, h);
	}
	curl_slist_free_all(list);
	curl_slist_free_all(connect_to);
	sl_buf_free(&path);
	sl_buf_free(&url);
	sl_buf_free(&auth);
	sl_buf_free(&line);
	sl_buf_free(&host);
	return rc;
}

/* --------------------------------------------------------- errors */

static const char *describe(char *out, size_t cap, const s3_client *c, const s3_call *call)
{
	snprintf(out, cap, "%s s3://%s/%.*s", call->method, call_bucket(c, call), DESCRIBE_MAX,
	         call->key ? call->key : "");
	return out;
}

static int skew_error(const s3_client *c, const s3_call *call, const char *what, const char *cause)
{
	time_t server = call->date[0] ? curl_getdate(call->date, NULL) : -1;
	int64_t local_ms = (int64_t)sl_clock_wall_ms() + c->clock_offset_ms;
	char offset_note[96] = "";

	if (c->clock_offset_ms != 0)
		snprintf(offset_note, sizeof(offset_note),
		         " (including clock_offset_ms=%" PRId64 ")", c->clock_offset_ms);
	if (server < 0)
		return sl_error_set_cause(SL_EAUTH, cause,
		                          "%s: S3 refused the request time: the local clock%s is "
		                          "off from the server's (it sent no Date to compare)",
		                          what, offset_note);
	int64_t skew_s = local_ms / 1000 - (int64_t)server;
	return sl_error_set_cause(SL_EAUTH, cause,
	                          "%s: S3 refused the request time: the local clock%s is %" PRId64
	                          " s %s the server's (Date: %s); fix the clock (NTP)",
	                          what, offset_note, skew_s < 0 ? -skew_s : skew_s,
	                          skew_s < 0 ? "behind" : "ahead of", call->date);
}

/* s3rver answers a Range on an empty object with 206 "bytes 0-0/0" and a
 * Content-Length of 1 it never sends, so curl reports a short transfer:
 * that is an empty object, not a failure to retry. */
static int empty_range(const s3_call *call, int64_t *first, int64_t *last, int64_t *total)
{
	return call->status == 206 && call->curl_rc == CURLE_PARTIAL_FILE &&
	       sl_s3_content_range(call->content_range, first, last, total) && *total == 0;
}

/* The error for a finished exchange that was not a success. */
static int call_error(const s3_client *c, const s3_call *call)
{
	char what[DESCRIBE_MAX + 64], cause[SL_ERROR_CAUSE_MAX];
	char code[64], message[160], bucket[80];

	describe(what, sizeof(what), c, call);
	if (call->overflow)
		return sl_error_set(SL_ETOOLARGE,
		                    "%s: response body larger than the %zu bytes asked for", what,
		                    call->resp_cap);
	if (call->curl_rc != CURLE_OK) {
		snprintf(cause, sizeof(cause), "curl rc=%d (%.100s)", (int)call->curl_rc,
		         call->curl_err[0] ? call->curl_err : curl_easy_strerror(call->curl_rc));
		return sl_error_set_cause(call->curl_rc == CURLE_OPERATION_TIMEDOUT ? SL_ETIMEOUT
		                                                                    : SL_EIO,
		                          cause, "%s: request failed", what);
	}
	sl_s3_xml_text(code, sizeof(code), call->error_body, "Code");
	sl_s3_xml_text(message, sizeof(message), call->error_body, "Message");
	snprintf(cause, sizeof(cause), "HTTP %ld%s%s", call->status, code[0] ? " " : "", code);
	if (strcmp(code, "RequestTimeTooSkewed") == 0)
		return skew_error(c, call, what, cause);
	if (call->status == 403 || strcmp(code, "SignatureDoesNotMatch") == 0 ||
	    strcmp(code, "InvalidAccessKeyId") == 0 || strcmp(code, "AccessDenied") == 0) {
		const char *why = strcmp(code, "SignatureDoesNotMatch") == 0
		                          ? "the secret access key does not match"
		                  : strcmp(code, "InvalidAccessKeyId") == 0
		                          ? "the access key id is unknown"
		                          : "access denied";
		return sl_error_set_cause(SL_EAUTH, cause, "%s: S3 refused our credentials: %s%s%s",
		                          what, why, message[0] ? ": " : "", message);
	}
	if (strcmp(code, "NoSuchBucket") == 0) {
		sl_s3_xml_text(bucket, sizeof(bucket), call->error_body, "BucketName");
		return sl_error_set_cause(SL_ENOTFOUND, cause, "%s: bucket '%s' does not exist",
		                          what, bucket[0] ? bucket : call_bucket(c, call));
	}
	if (call->status == 404 && (strcmp(code, "NoSuchKey") == 0 || code[0] == '\0'))
		return sl_error_set_cause(SL_ENOTFOUND, cause, "%s: no such object", what);
	if (call->status == 413 || strcmp(code, "EntityTooLarge") == 0)
		return sl_error_set_cause(SL_ETOOLARGE, cause, "%s: %s", what,
		                          message[0] ? message : "object too large");
	return sl_error_set_cause(SL_EIO, cause, "%s: S3 answered %ld%s%s", what, call->status,
	                          message[0] ? ": " : "", message);
}

static int retryable(const s3_call *call)
{
	int64_t first, last, total;

	if (call->overflow || empty_range(call, &first, &last, &total))
		return 0;
	if (call->curl_rc != CURLE_OK)
		return call->curl_rc != CURLE_URL_MALFORMAT &&
		       call->curl_rc != CURLE_UNSUPPORTED_PROTOCOL;
	switch (call->status) {
	case 408:
	case 429:
	case 500:
	case 502:
	case 503:
	case 504:
		return 1;
	default:
		return 0;
	}
}

/* Send with retries (see the header comment). SL_OK for a 2xx answer. */
static int s3_request(s3_client *c, s3_call *call)
{
	char payload_hash[2 * SL_DIGEST_LEN + 1] = SL_SIGV4_EMPTY_SHA256;
	int rc;

	if (call->body_len > 0) {
		sl_digest d;
		sl_sha256(&d, call->body, call->body_len);
		sl_hex_encode(payload_hash, d.bytes, sizeof(d.bytes));
	}
	for (uint32_t attempt = 0;; attempt++) {
		uint64_t wait = slowdown_current(c);
		if (wait > 0)
			sl_sleep_ms(wait);
		if ((rc = perform_once(c, call, payload_hash)))
			return rc;
		if (call->curl_rc == CURLE_OK && !call->overflow && call->status >= 200 &&
		    call->status < 300) {
			slowdown_shrink(c);
			return SL_OK;
		}
		if (!retryable(call) || attempt >= c->max_retries)
			return call_error(c, call);
		char code[64] = "";
		sl_s3_xml_text(code, sizeof(code), call->error_body, "Code");
		if (call->status == 429 || (call->status == 503 && (strcmp(code, "SlowDown") == 0 ||
		                                                    call->retry_after_s >= 0)))
			slowdown_grow(c, call->retry_after_s);
		uint64_t delay = backoff_ms(c, attempt);
		char what[DESCRIBE_MAX + 64], quoted[DESCRIBE_MAX + 80];
		describe(what, sizeof(what), c, call);
		sl_log(SL_LOG_WARN, "s3 request retrying",
		       "request=%s status=%ld code=%s curl_rc=%d attempt=%" PRIu32
		       " delay_ms=%" PRIu64 " slowdown_ms=%" PRIu64,
		       sl_log_quote(quoted, sizeof(quoted), what), call->status,
		       code[0] ? code : "-", (int)call->curl_rc, attempt + 1, delay,
		       slowdown_current(c));
		sl_sleep_ms(delay);
	}
}

/* ------------------------------------------------------------ sink */

typedef struct s3_upload {
	char *key;      /* prefix + key */
	uint64_t size;  /* bytes announced at begin */
	uint64_t given; /* bytes received through write */
	int done;       /* single PUT sent */
	int failed;     /* a write failed (the multipart upload is already aborted) */
	uint8_t *buf;   /* a single object's bytes, or the part being filled */
	size_t buf_len;
	/* multipart */
	char *upload_id; /* NULL: single PUT, or aborted */
	uint32_t n_parts;
	uint32_t parts_sent;
	char **etags;
} s3_upload;

static void upload_free(s3_upload *u)
{
	if (u == NULL)
		return;
	for (uint32_t i = 0; i < u->n_parts && u->etags; i++)
		sl_free(u->etags[i]);
	sl_free(u->etags);
	sl_free(u->upload_id);
	sl_free(u->buf);
	sl_free(u->key);
	sl_free(u);
}

/* AbortMultipartUpload, with retries; failures are logged, not returned,
 * since the caller is already reporting the error that led here. */
static void multipart_abort(s3_client *c, s3_upload *u)
{
	if (u->upload_id == NULL)
		return;
	sl_error saved = *sl_error_last();
	const sl_sigv4_param query[] = {{"uploadId", u->upload_id}};
	s3_call *call = sl_calloc(1, sizeof(*call));
	if (call != NULL) {
		*call = (s3_call){.method = "DELETE", .key = u->key, .query = query, .n_query = 1};
		if (s3_request(c, call) != SL_OK) {
			char key[DESCRIBE_MAX];
			sl_log(SL_LOG_WARN, "s3 abort of multipart upload failed",
			       "key=%s upload_id=%s error=\"%s\"",
			       sl_log_quote(key, sizeof(key), u->key), u->upload_id,
			       sl_error_last()->message);
		}
	}
	sl_free(call);
	sl_free(u->upload_id);
	u->upload_id = NULL;
	/* Keep the error that led here for the caller. */
	sl_error_set_cause(saved.code, saved.cause, "%s", saved.message);
}

static int sink_begin(void *self, const char *key, uint64_t size, void **out)
{
	s3_client *c = self;
	s3_upload *u = NULL;
	s3_call *call = NULL;
	char *xml = NULL;
	int rc = SL_OK;

	if (key == NULL || key[0] == '\0')
		return sl_error_set(SL_EINVAL, "s3: empty key");
	if ((u = sl_calloc(1, sizeof(*u))) == NULL ||
	    (u->key = sl_strdup_printf("%s%s", c->prefix, key)) == NULL) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	u->size = size;
	if (size <= c->part_size)
		goto done;

	uint64_t n_parts = (size + c->part_size - 1) / c->part_size;
	if (n_parts > MAX_PARTS) {
		rc = sl_error_set(SL_ETOOLARGE,
		                  "s3: %s is %" PRIu64 " bytes: %" PRIu64
		                  " parts of %zu bytes, S3 allows %u; raise part_size",
		                  u->key, size, n_parts, c->part_size, MAX_PARTS);
		goto cleanup;
	}
	u->n_parts = (uint32_t)n_parts;
	if ((u->etags = sl_calloc(u->n_parts, sizeof(char *))) == NULL ||
	    (call = sl_calloc(1, sizeof(*call))) == NULL ||
	    (xml = sl_malloc(XML_BODY_MAX + 1)) == NULL) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	const sl_sigv4_param query[] = {{"uploads", ""}};
	*call = (s3_call){.method = "POST",
	                  .key = u->key,
	                  .query = query,
	                  .n_query = 1,
	                  .resp = (uint8_t *)xml,
	                  .resp_cap = XML_BODY_MAX};
	if ((rc = s3_request(c, call)))
		goto cleanup;
	xml[call->resp_len] = '\0';
	char upload_id[1024];
	sl_s3_xml_text(upload_id, sizeof(upload_id), xml, "UploadId");
	if (upload_id[0] == '\0') {
		rc = sl_error_set(SL_ECORRUPT,
		                  "s3: CreateMultipartUpload for %s returned no UploadId", u->key);
		goto cleanup;
	}
	if ((u->upload_id = sl_strdup(upload_id)) == NULL) {
		rc = SL_ENOMEM;
		goto cleanup;
	}

done:
	*out = u;
	u = NULL;
cleanup:
	upload_free(u);
	sl_free(call);
	sl_free(xml);
	return rc;
}

static int put_single(s3_client *c, s3_upload *u, const uint8_t *data, size_t len)
{
	s3_call *call = sl_calloc(1, sizeof(*call));
	int rc;

	if (call == NULL)
		return SL_ENOMEM;
	*call = (s3_call){.method = "PUT",
	                  .key = u->key,
	                  .body = data,
	                  .body_len = len,
	                  .content_type = "application/octet-stream"};
	if ((rc = s3_request(c, call)) == SL_OK)
		u->done = 1;
	sl_free(call);
	return rc;
}

static int put_part(s3_client *c, s3_upload *u, const uint8_t *data, size_t len)
{
	char part_number[16];
	s3_call *call = sl_calloc(1, sizeof(*call));
	int rc;

	if (call == NULL)
		return SL_ENOMEM;
	if (u->parts_sent >= u->n_parts) {
		rc = sl_error_set(SL_EINTERNAL, "s3: %s: more parts than announced", u->key);
		goto cleanup;
	}
	snprintf(part_number, sizeof(part_number), "%" PRIu32, u->parts_sent + 1);
	const sl_sigv4_param query[] = {{"partNumber", part_number}, {"uploadId", u->upload_id}};
	*call = (s3_call){.method = "PUT",
	                  .key = u->key,
	                  .query = query,
	                  .n_query = 2,
	                  .body = data,
	                  .body_len = len,
	                  .content_type = "application/octet-stream"};
	if ((rc = s3_request(c, call)))
		goto cleanup;
	if (call->etag[0] == '\0') {
		rc = sl_error_set(SL_ECORRUPT, "s3: UploadPart %s of %s returned no ETag",
		                  part_number, u->key);
		goto cleanup;
	}
	if ((u->etags[u->parts_sent] = sl_strdup(call->etag)) == NULL) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	u->parts_sent++;

cleanup:
	sl_free(call);
	return rc;
}

static int write_multipart(s3_client *c, s3_upload *u, const uint8_t *data, size_t len)
{
	int rc = SL_OK;

	while (len > 0) {
		uint64_t left_after = u->size - u->given; /* object bytes not yet received */
		size_t want = c->part_size;
		if (u->buf_len == 0 && (len >= want || len == left_after)) {
			/* The chunk holds a whole part (or the last one): send it as it is. */
			size_t n = len < want ? len : want;
			if ((rc = put_part(c, u, data, n)))
				return rc;
			data += n;
			len -= n;
			u->given += n;
			continue;
		}
		if (u->buf == NULL && (u->buf = sl_malloc(c->part_size)) == NULL)
			return SL_ENOMEM;
		size_t n = want - u->buf_len;
		if (n > len)
			n = len;
		memcpy(u->buf + u->buf_len, data, n);
		u->buf_len += n;
		data += n;
		len -= n;
		u->given += n;
		if (u->buf_len == want || u->given == u->size) {
			if ((rc = put_part(c, u, u->buf, u->buf_len)))
				return rc;
			u->buf_len = 0;
		}
	}
	return rc;
}

static int sink_write(void *self, void *upload, const uint8_t *data, size_t len)
{
	s3_client *c = self;
	s3_upload *u = upload;
	int rc = SL_OK;

	if (u->failed)
		return sl_error_set(SL_EINVAL, "s3: %s: write after a failed write", u->key);
	if (len > u->size - u->given) {
		rc = sl_error_set(SL_EINVAL,
		                  "s3: %s: %zu more bytes than the %" PRIu64 " announced", u->key,
		                  len - (size_t)(u->size - u->given), u->size);
		goto cleanup;
	}
	if (u->n_parts > 0) {
		rc = write_multipart(c, u, data, len);
		goto cleanup;
	}
	if (u->given == 0 && len == u->size) {
		u->given = len;
		rc = put_single(c, u, data, len); /* the whole object in one chunk: no copy */
		goto cleanup;
	}
	if (u->buf == NULL && (u->buf = sl_malloc(u->size)) == NULL) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	memcpy(u->buf + u->buf_len, data, len);
	u->buf_len += len;
	u->given += len;
	if (u->given == u->size)
		rc = put_single(c, u, u->buf, u->buf_len);

cleanup:
	if (rc != SL_OK) {
		u->failed = 1;
		multipart_abort(c, u);
	}
	return rc;
}

static int complete_multipart(s3_client *c, s3_upload *u)
{
	sl_buf body = SL_BUF_INIT((size_t)u->n_parts * 256 + 256);
	s3_call *call = sl_calloc(1, sizeof(*call));
	char *xml = sl_malloc(XML_BODY_MAX + 1);
	int rc = SL_OK;

	if (call == NULL || xml == NULL) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	if ((rc = sl_buf_append_str(&body, "<CompleteMultipartUpload>")))
		goto cleanup;
	for (uint32_t i = 0; i < u->parts_sent; i++) {
		if ((rc = sl_buf_printf(&body,
		                        "<Part><PartNumber>%" PRIu32
		                        "</PartNumber><ETag>%s</ETag></Part>",
		                        i + 1, u->etags[i])))
			goto cleanup;
	}
	if ((rc = sl_buf_append_str(&body, "</CompleteMultipartUpload>")))
		goto cleanup;
	const sl_sigv4_param query[] = {{"uploadId", u->upload_id}};
	*call = (s3_call){.method = "POST",
	                  .key = u->key,
	                  .query = query,
	                  .n_query = 1,
	                  .body = body.data,
	                  .body_len = body.len,
	                  .content_type = "application/xml",
	                  .resp = (uint8_t *)xml,
	                  .resp_cap = XML_BODY_MAX};
	if ((rc = s3_request(c, call)))
		goto cleanup;
	xml[call->resp_len] = '\0';
	/* S3 may answer 200 and report the failure in the body. */
	if (strstr(xml, "<Error>") != NULL) {
		memcpy(call->error_body, xml,
		       call->resp_len < ERROR_BODY_MAX ? call->resp_len + 1 : ERROR_BODY_MAX);
		call->error_body[ERROR_BODY_MAX] = '\0';
		call->status = 500;
		rc = call_error(c, call);
		goto cleanup;
	}
	sl_free(u->upload_id); /* completed: nothing left to abort */
	u->upload_id = NULL;

cleanup:
	sl_buf_free(&body);
	sl_free(call);
	sl_free(xml);
	return rc;
}

static int sink_commit(void *self, void *upload)
{
	s3_client *c = self;
	s3_upload *u = upload;
	int rc = SL_OK;

	if (u->failed) {
		rc = sl_error_set(SL_EINVAL, "s3: %s: commit after a failed write", u->key);
	} else if (u->given != u->size) {
		rc = sl_error_set(SL_EINVAL,
		                  "s3: %s: commit after %" PRIu64 " of %" PRIu64 " bytes", u->key,
		                  u->given, u->size);
	} else if (u->n_parts > 0) {
		rc = complete_multipart(c, u);
	} else if (!u->done) {
		rc = put_single(c, u, NULL, 0); /* an empty object: write was never called */
	}
	if (rc != SL_OK)
		multipart_abort(c, u);
	upload_free(u);
	return rc;
}

static void sink_abort(void *self, void *upload)
{
	s3_upload *u = upload;
	if (u == NULL)
		return;
	multipart_abort(self, u);
	upload_free(u);
}

static int sink_flush(void *self, sl_sink_failed_fn on_failed, void *ctx)
{
	(void)self, (void)on_failed, (void)ctx;
	/* an acknowledged PUT or CompleteMultipartUpload is durable */
	return SL_OK;
}

/* DeleteObject: S3 answers 204 for a missing key too. */
static int sink_remove(void *self, const char *key)
{
	s3_client *c = self;
	s3_call *call = NULL;
	char *full = NULL;
	int rc;

	if (key == NULL || key[0] == '\0')
		return sl_error_set(SL_EINVAL, "s3: empty key");
	if ((call = sl_calloc(1, sizeof(*call))) == NULL ||
	    (full = sl_strdup_printf("%s%s", c->prefix, key)) == NULL) {
		sl_free(call);
		return SL_ENOMEM;
	}
	*call = (s3_call){.method = "DELETE", .key = full};
	rc = s3_request(c, call);
	sl_free(call);
	sl_free(full);
	return rc == SL_ENOTFOUND ? SL_OK : rc;
}

static void client_close(void *self)
{
	client_free(self);
}

static const sl_sink_ops s3_sink_ops = {
        .kind = "s3",
        .begin = sink_begin,
        .write = sink_write,
        .commit = sink_commit,
        .abort = sink_abort,
        .remove = sink_remove,
        .flush = sink_flush,
        .close = client_close,
};

int sl_s3_sink_open(sl_sink *out, const sl_s3_config *cfg)
{
	s3_client *c = NULL;
	int rc;

	if ((rc = client_new(&c, cfg)))
		return rc;
	out->ops = &s3_sink_ops;
	out->self = c;
	return SL_OK;
}

/* --------------------------------------------------------- fetcher */

typedef struct s3_fetcher {
	s3_client *client;
	uint8_t *buf; /* each read's bytes, lent to the caller until the next */
	size_t buf_cap;
} s3_fetcher;

static int fetcher_read(void *self, const sl_row *row, uint64_t offset, size_t cap,
                        const uint8_t **data, size_t *n_read, uint64_t *total)
{
	s3_fetcher *f = self;
	s3_client *c = f->client;
	s3_call *call = NULL;
	const char *bucket;
	char range[64];
	int64_t first, last, size;
	int rc;

	if (row->object_key == NULL || row->object_key[0] == '\0' || cap == 0)
		return sl_error_set(SL_EINVAL,
		                    "s3: fetch of row %s without an object key or a size", row->id);
	if (row->bucket != NULL && sl_s3_bucket_name_check(row->bucket) != SL_OK)
		return sl_error_wrap("s3: row %s", row->id);
	bucket = row->bucket != NULL ? row->bucket : c->bucket;
	if (f->buf_cap < cap) { /* nothing in it is still lent: no need to keep it */
		sl_free(f->buf);
		f->buf_cap = 0;
		if ((f->buf = sl_malloc(cap)) == NULL)
			return SL_ENOMEM;
		f->buf_cap = cap;
	}
	*data = f->buf;
	if ((call = sl_calloc(1, sizeof(*call))) == NULL)
		return SL_ENOMEM;
	snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRIu64, offset,
	         offset + (uint64_t)cap - 1);
	*call = (s3_call){.method = "GET",
	                  .bucket = bucket,
	                  .key = row->object_key,
	                  .range = range,
	                  .resp = f->buf,
	                  .resp_cap = cap};
	rc = s3_request(c, call);
	if (rc != SL_OK && empty_range(call, &first, &last, &size)) {
		*n_read = 0;
		*total = 0;
		rc = SL_OK;
		goto cleanup;
	}
	if (rc != SL_OK && call->status == 416) {
		/* Past the end (or an empty object): learn the size from a HEAD. */
		*call = (s3_call){.method = "HEAD", .bucket = bucket, .key = row->object_key};
		if ((rc = s3_request(c, call)))
			goto cleanup;
		if (call->content_length < 0 || (uint64_t)call->content_length > offset) {
			rc = sl_error_set(SL_ECORRUPT,
			                  "s3: GET s3://%s/%s at %" PRIu64
			                  " was refused as out of range, but HEAD says %" PRId64
			                  " bytes",
			                  bucket, row->object_key, offset, call->content_length);
			goto cleanup;
		}
		*n_read = 0;
		*total = (uint64_t)call->content_length;
		goto cleanup;
	}
	if (rc != SL_OK)
		goto cleanup;
	if (call->status == 206) {
		if (!sl_s3_content_range(call->content_range, &first, &last, &size) ||
		    first != (int64_t)offset || last - first + 1 != (int64_t)call->resp_len) {
			rc = sl_error_set(
			        SL_ECORRUPT,
			        "s3: GET s3://%s/%s: Content-Range '%s' does not match the "
			        "%zu bytes received at %" PRIu64,
			        bucket, row->object_key, call->content_range, call->resp_len,
			        offset);
			goto cleanup;
		}
	} else {
		/* 200: the whole object, which fit only if it is this small. */
		size = call->content_length >= 0 ? call->content_length : (int64_t)call->resp_len;
		if (offset != 0 || size != (int64_t)call->resp_len) {
			rc = sl_error_set(
			        SL_ECORRUPT,
			        "s3: GET s3://%s/%s: the server ignored the range at %" PRIu64,
			        bucket, row->object_key, offset);
			goto cleanup;
		}
	}
	*n_read = call->resp_len;
	*total = (uint64_t)size;

cleanup:
	sl_free(call);
	return rc;
}

static void fetcher_close(void *self)
{
	s3_fetcher *f = self;
	if (f == NULL)
		return;
	client_free(f->client);
	sl_free(f->buf);
	sl_free(f);
}

static const sl_fetcher_ops s3_fetcher_ops = {fetcher_read, fetcher_close};

int sl_s3_fetcher_open(sl_fetcher *out, const sl_s3_config *cfg)
{
	s3_fetcher *f;
	int rc;

	if ((f = sl_calloc(1, sizeof(*f))) == NULL)
		return SL_ENOMEM;
	if ((rc = client_new(&f->client, cfg))) {
		sl_free(f);
		return rc;
	}
	out->ops = &s3_fetcher_ops;
	out->self = f;
	return SL_OK;
}
