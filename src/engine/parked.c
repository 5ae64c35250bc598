/* Rows L3 refused for good (engine_internal.h): an acknowledged write that
 * L3 will not take (a constraint, a value too large) is kept here, in
 * DIR/parked, synced before the WAL may drop its record, and shown by
 * `sluice engine status`. Nothing acknowledged is thrown away.
 *
 * File: records one after another, each
 *   length of the rest (4 bytes BE), CRC-32C of the rest (4 bytes BE),
 *   version (8 BE), deleted (1), attempts (4 BE), key length (2 BE), key,
 *   error length (2 BE), error, value (the remaining bytes).
 * A torn tail (a crash mid-append) is cut at open.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine_internal.h"

#define ERROR_MAX 1000

typedef struct parked_row {
	char *key;
	size_t key_len;
	uint64_t version;
	int deleted;
	uint64_t value_len;
	uint32_t attempts;
	char *error;
} parked_row;

struct parked_list {
	pthread_mutex_t lock;
	int fd;
	char path[4096];
	parked_row *rows;
	size_t n, cap;
};

static int remember(parked_list *p, const char *key, size_t key_len, uint64_t version, int deleted,
                    uint64_t value_len, uint32_t attempts, const char *error, size_t error_len)
{
	parked_row *rows = sl_grow(p->rows, &p->cap, p->n + 1, sizeof(*rows), 16);
	if (rows == NULL)
		return SL_ENOMEM;
	p->rows = rows;
	parked_row *r = &rows[p->n];
	/* the key as bytes: it may not be text (sl_strndup stops at a NUL) */
	if ((r->key = sl_malloc(key_len + 1)) == NULL ||
	    (r->error = sl_strndup(error, error_len)) == NULL) {
		sl_free(r->key);
		return SL_ENOMEM;
	}
	memcpy(r->key, key, key_len);
	r->key[key_len] = '\0';
	r->key_len = key_len;
	r->version = version;
	r->deleted = deleted;
	r->value_len = value_len;
	r->attempts = attempts;
	p->n++;
	return SL_OK;
}

/* Reads the file's records; returns the length of its good prefix. */
static int load(parked_list *p, const sl_buf *data, size_t *good)
{
	sl_reader r;
	sl_reader_init(&r, data->data, data->len);
	*good = 0;
	for (;;) {
		uint32_t len, crc, attempts;
		uint64_t version;
		uint8_t deleted;
		const uint8_t *rest, *key, *err;
		uint8_t l2[2];
		const uint8_t *lp;
		if (sl_reader_be32(&r, &len) != SL_OK || sl_reader_be32(&r, &crc) != SL_OK ||
		    sl_reader_bytes(&r, len, &rest) != SL_OK || sl_crc32c(0, rest, len) != crc)
			break;
		sl_reader body;
		sl_reader_init(&body, rest, len);
		if (sl_reader_be64(&body, &version) != SL_OK ||
		    sl_reader_u8(&body, &deleted) != SL_OK ||
		    sl_reader_be32(&body, &attempts) != SL_OK ||
		    sl_reader_bytes(&body, 2, &lp) != SL_OK)
			break;
		memcpy(l2, lp, 2);
		size_t key_len = (size_t)l2[0] << 8 | l2[1];
		if (sl_reader_bytes(&body, key_len, &key) != SL_OK ||
		    sl_reader_bytes(&body, 2, &lp) != SL_OK)
			break;
		size_t err_len = (size_t)lp[0] << 8 | lp[1];
		if (sl_reader_bytes(&body, err_len, &err) != SL_OK)
			break;
		int rc = remember(p, (const char *)key, key_len, version, deleted != 0,
		                  sl_reader_remaining(&body), attempts, (const char *)err, err_len);
		if (rc != SL_OK)
			return rc;
		*good = data->len - sl_reader_remaining(&r);
	}
	sl_error_clear();
	return SL_OK;
}

int parked_open(parked_list **out, const char *dir)
{
	parked_list *p = sl_calloc(1, sizeof(*p));
	if (p == NULL)
		return SL_ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	snprintf(p->path, sizeof(p->path), "%s/parked", dir);
	sl_buf data = SL_BUF_INIT(SIZE_MAX);
	int rc = SL_OK;
	if ((p->fd = open(p->path, O_RDWR | O_CREAT | O_APPEND, 0644)) < 0) {
		rc = sl_error_set(SL_EIO, "open '%s': %s", p->path, strerror(errno));
		goto done;
	}
	uint8_t chunk[65536];
	ssize_t got;
	while (rc == SL_OK && (got = read(p->fd, chunk, sizeof(chunk))) > 0)
		rc = sl_buf_append(&data, chunk, (size_t)got);
	size_t good = 0;
	if (rc == SL_OK)
		rc = load(p, &data, &good);
	if (rc == SL_OK && good < data.len &&
	    (ftruncate(p->fd, (off_t)good) != 0 || fdatasync(p->fd) != 0))
		rc = sl_error_set(SL_EIO, "cut the torn tail of '%s': %s", p->path,
		                  strerror(errno));
done:
	sl_buf_free(&data);
	if (rc != SL_OK) {
		parked_close(p);
		return rc;
	}
	*out = p;
	return SL_OK;
}

void parked_close(parked_list *p)
{
	if (p == NULL)
		return;
	if (p->fd >= 0)
		close(p->fd);
	for (size_t i = 0; i < p->n; i++) {
		sl_free(p->rows[i].key);
		sl_free(p->rows[i].error);
	}
	sl_free(p->rows);
	pthread_mutex_destroy(&p->lock);
	sl_free(p);
}

int parked_add(parked_list *p, const char *key, size_t key_len, uint64_t version, int deleted,
               const uint8_t *value, size_t value_len, uint32_t attempts, const char *error)
{
	if (parked_version(p, key, key_len) == version)
		return SL_OK; /* parked before a restart, replayed since */
	size_t err_len = strnlen(error, ERROR_MAX);
	sl_buf rec = SL_BUF_INIT(SIZE_MAX);
	uint8_t head[8] = {0};
	int rc = sl_buf_append(&rec, head, sizeof(head));
	if (rc == SL_OK)
		rc = sl_buf_append_be64(&rec, version);
	if (rc == SL_OK)
		rc = sl_buf_append_byte(&rec, deleted ? 1 : 0);
	if (rc == SL_OK)
		rc = sl_buf_append_be32(&rec, attempts);
	uint8_t l2[2] = {(uint8_t)(key_len >> 8), (uint8_t)key_len};
	if (rc == SL_OK)
		rc = sl_buf_append(&rec, l2, 2);
	if (rc == SL_OK)
		rc = sl_buf_append(&rec, key, key_len);
	uint8_t e2[2] = {(uint8_t)(err_len >> 8), (uint8_t)err_len};
	if (rc == SL_OK)
		rc = sl_buf_append(&rec, e2, 2);
	if (rc == SL_OK)
		rc = sl_buf_append(&rec, error, err_len);
	if (rc == SL_OK && value_len)
		rc = sl_buf_append(&rec, value, value_len);
	if (rc != SL_OK) {
		sl_buf_free(&rec);
		return rc;
	}
	size_t body = rec.len - 8;
	sl_be32_put(rec.data, (uint32_t)body);
	sl_be32_put(rec.data + 4, sl_crc32c(0, rec.data + 8, body));
	pthread_mutex_lock(&p->lock);
	size_t off = 0;
	while (rc == SL_OK && off < rec.len) {
		ssize_t w = write(p->fd, rec.data + off, rec.len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			rc = sl_error_set(SL_EIO, "append to '%s': %s", p->path, strerror(errno));
		else
			off += (size_t)w;
	}
	if (rc == SL_OK && fdatasync(p->fd) != 0)
		rc = sl_error_set(SL_EIO, "sync '%s': %s", p->path, strerror(errno));
	if (rc == SL_OK)
		rc = remember(p, key, key_len, version, deleted, value_len, attempts, error,
		              err_len);
	pthread_mutex_unlock(&p->lock);
	sl_buf_free(&rec);
	return rc;
}

uint64_t parked_count(parked_list *p)
{
	pthread_mutex_lock(&p->lock);
	uint64_t n = p->n;
	pthread_mutex_unlock(&p->lock);
	return n;
}

int parked_each(parked_list *p, sl_parked_fn cb, void *ctx)
{
	int rc = SL_OK;
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; rc == SL_OK && i < p->n; i++) {
		const parked_row *r = &p->rows[i];
		sl_parked_row row = {r->key,       r->key_len,  r->version, r->deleted,
		                     r->value_len, r->attempts, r->error};
		rc = cb(ctx, &row);
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}

uint64_t parked_version(parked_list *p, const char *key, size_t key_len)
{
	uint64_t version = 0;
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < p->n; i++)
		if (p->rows[i].version > version && p->rows[i].key_len == key_len &&
		    memcmp(p->rows[i].key, key, key_len) == 0)
			version = p->rows[i].version;
	pthread_mutex_unlock(&p->lock);
	return version;
}
