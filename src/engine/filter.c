/* The engine's cuckoo filter over L3's live keys (engine_internal.h).
 *
 * Invariants:
 *   F1  While trusted, every live key of L3 is in the filter: a key is
 *       added before L1 lets go of it (drain.c marks the entry clean only
 *       after filter_add), and removed only when L3 confirmed that a write
 *       turned a live row into a tombstone.
 *   F2  A filter is trusted only when it was rebuilt from L3 by the drain
 *       (no write in between), or loaded from a snapshot whose saved L3
 *       position equals L3's position now. A snapshot is deleted once read,
 *       so a later crash cannot leave one that looks current.
 *   F3  A full filter is dropped (untrusted) rather than losing a key; the
 *       next rebuild doubles the capacity. So is a filter after an L3 write
 *       whose outcome is unknown (it may have committed new keys that the
 *       repeat, guarded, reports as not applied).
 *
 * Snapshot file DIR/filter: "SLFILT01", the 32-byte L3 position, then
 * sl_cuckoo_save's bytes (which carry their own checksum).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine_internal.h"

#define FILTER_MAGIC     "SLFILT01"
#define FILTER_MAGIC_LEN 8
#define SCAN_PAGE        100000

int filter_init(engine_filter *ef, uint64_t capacity, unsigned fp_bits)
{
	memset(ef, 0, sizeof(*ef));
	pthread_rwlock_init(&ef->lock, NULL);
	ef->capacity = capacity;
	ef->fp_bits = fp_bits;
	return sl_cuckoo_new(&ef->f, capacity, fp_bits);
}

void filter_free(engine_filter *ef)
{
	sl_cuckoo_free(ef->f);
	ef->f = NULL;
	pthread_rwlock_destroy(&ef->lock);
}

static void path_of(char *out, size_t cap, const char *dir, const char *name)
{
	snprintf(out, cap, "%s/%s", dir, name);
}

int filter_load(engine_filter *ef, const char *dir, const sl_digest *position)
{
	char path[4096];
	path_of(path, sizeof(path), dir, "filter");
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return SL_OK; /* none saved: the drain rebuilds */
	sl_buf data = SL_BUF_INIT(SIZE_MAX);
	uint8_t chunk[65536];
	size_t got;
	int rc = SL_OK;
	while (rc == SL_OK && (got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		rc = sl_buf_append(&data, chunk, got);
	fclose(f);
	unlink(path);
	sl_cuckoo *loaded = NULL;
	if (rc == SL_OK && data.len > FILTER_MAGIC_LEN + SL_DIGEST_LEN &&
	    memcmp(data.data, FILTER_MAGIC, FILTER_MAGIC_LEN) == 0 &&
	    memcmp(data.data + FILTER_MAGIC_LEN, position->bytes, SL_DIGEST_LEN) == 0 &&
	    sl_cuckoo_load(&loaded, data.data + FILTER_MAGIC_LEN + SL_DIGEST_LEN,
	                   data.len - FILTER_MAGIC_LEN - SL_DIGEST_LEN) == SL_OK) {
		pthread_rwlock_wrlock(&ef->lock);
		sl_cuckoo_free(ef->f);
		ef->f = loaded;
		ef->capacity = sl_cuckoo_capacity(loaded);
		ef->trusted = 1;
		pthread_rwlock_unlock(&ef->lock);
	}
	sl_error_clear(); /* a stale or damaged snapshot only means a rebuild */
	sl_buf_free(&data);
	return rc == SL_ENOMEM ? rc : SL_OK;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int filter_save(engine_filter *ef, const char *dir, const sl_digest *position)
{
	char path[4096], tmp[4200];
	path_of(path, sizeof(path), dir, "filter");
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	sl_buf data = SL_BUF_INIT(SIZE_MAX);
	int rc = sl_buf_append(&data, FILTER_MAGIC, FILTER_MAGIC_LEN);
	if (rc == SL_OK)
		rc = sl_buf_append(&data, position->bytes, SL_DIGEST_LEN);
	pthread_rwlock_rdlock(&ef->lock);
	if (!ef->trusted)
		rc = SL_ENOTFOUND; /* nothing worth saving */
	if (rc == SL_OK)
		rc = sl_cuckoo_save(ef->f, &data);
	pthread_rwlock_unlock(&ef->lock);
	if (rc != SL_OK) {
		sl_buf_free(&data);
		return rc == SL_ENOTFOUND ? SL_OK : rc;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write_all(fd, data.data, data.len) != 0 || fdatasync(fd) != 0 ||
	    rename(tmp, path) != 0) {
		rc = sl_error_set(SL_EIO, "save the filter to '%s': %s", path, strerror(errno));
		unlink(tmp);
	}
	if (fd >= 0)
		close(fd);
	sl_buf_free(&data);
	return rc;
}

typedef struct scan_ctx {
	sl_cuckoo *f;
	sl_buf last; /* the page's last key, where the next page starts */
} scan_ctx;

static int add_scanned(void *ctx, const char *key, size_t len)
{
	scan_ctx *c = ctx;
	int rc = sl_cuckoo_add(c->f, key, len);
	return rc == SL_OK ? sl_buf_set(&c->last, key, len) : rc;
}

/* One pass over L3's live keys into a filter of the given capacity. */
static int fill(sl_tier *tier, sl_cuckoo *f)
{
	scan_ctx c = {f, SL_BUF_INIT(SIZE_MAX)};
	size_t n;
	int rc, first = 1;
	do {
		rc = tier->ops->scan_live(tier->impl, first ? NULL : (const char *)c.last.data,
		                          c.last.len, SCAN_PAGE, add_scanned, &c, &n);
		first = 0;
	} while (rc == SL_OK && n == SCAN_PAGE);
	sl_buf_free(&c.last);
	return rc;
}

int filter_rebuild(engine_filter *ef, sl_tier *tier)
{
	uint64_t capacity = ef->capacity;
	for (;;) {
		sl_cuckoo *f = NULL;
		int rc = sl_cuckoo_new(&f, capacity, ef->fp_bits);
		if (rc == SL_OK)
			rc = fill(tier, f);
		if (rc == SL_ETOOLARGE) { /* full: twice the room (F3) */
			sl_error_clear();
			sl_cuckoo_free(f);
			capacity *= 2;
			continue;
		}
		if (rc != SL_OK) {
			sl_cuckoo_free(f);
			return rc;
		}
		pthread_rwlock_wrlock(&ef->lock);
		sl_cuckoo_free(ef->f);
		ef->f = f;
		ef->capacity = capacity;
		ef->trusted = 1;
		pthread_rwlock_unlock(&ef->lock);
		return SL_OK;
	}
}

int filter_maybe(engine_filter *ef, const char *key, size_t len)
{
	pthread_rwlock_rdlock(&ef->lock);
	int maybe = !ef->trusted || sl_cuckoo_contains(ef->f, key, len);
	pthread_rwlock_unlock(&ef->lock);
	return maybe;
}

void filter_add(engine_filter *ef, const char *key, size_t len)
{
	pthread_rwlock_wrlock(&ef->lock);
	if (ef->trusted && sl_cuckoo_add(ef->f, key, len) != SL_OK) {
		sl_error_clear();
		ef->trusted = 0; /* F3 */
		ef->capacity *= 2;
	}
	pthread_rwlock_unlock(&ef->lock);
}

void filter_remove(engine_filter *ef, const char *key, size_t len)
{
	pthread_rwlock_wrlock(&ef->lock);
	if (ef->trusted)
		sl_cuckoo_remove(ef->f, key, len);
	pthread_rwlock_unlock(&ef->lock);
}

int filter_trusted(engine_filter *ef, uint64_t *keys)
{
	pthread_rwlock_rdlock(&ef->lock);
	int trusted = ef->trusted;
	*keys = trusted ? sl_cuckoo_count(ef->f) : 0;
	pthread_rwlock_unlock(&ef->lock);
	return trusted;
}

void filter_distrust(engine_filter *ef)
{
	pthread_rwlock_wrlock(&ef->lock);
	ef->trusted = 0;
	pthread_rwlock_unlock(&ef->lock);
}
