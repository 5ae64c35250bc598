/* The directory sink: each key becomes a file under the root, its segments
 * directories ("c1/a7/trace/0b5e..." -> ROOT/c1/a7/trace/0b5e...).
 *
 * Durability: an object is written to a temporary file next to its final
 * name (".NAME.sluice-tmp-XXXXXX"), fsynced, renamed over the final name,
 * and the directory fsynced, so a reader sees the old file or the whole new
 * one, and a crash leaves at worst a temporary file (ignored, overwritten by
 * nothing, removed by abort).
 *
 * Containment: keys pass the store's key rules (no empty, "." or ".."
 * segment, no control character), and every directory is opened relative to
 * its parent with O_NOFOLLOW, so neither a crafted key nor a symlink placed
 * inside the root can lead a write outside it.
 *
 * Idempotence: the new bytes are hashed as they are written; if the final
 * file already exists with the same size and hash, the temporary file is
 * dropped and the existing file is left untouched (same mtime).
 *
 * Removal unlinks the key's file (a missing file or directory is already
 * removed) and fsyncs its directory. Directories are left in place, even
 * empty: a worker may be creating a file in one at that moment.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sluice/connect.h"
#include "sluice/store.h"

typedef struct dir_sink {
	int root_fd;
} dir_sink;

typedef struct dir_upload {
	int dir_fd;     /* the final file's directory */
	int fd;         /* the temporary file */
	char *name;     /* final file name within dir_fd */
	char *tmp_name; /* temporary file name within dir_fd */
	uint64_t size, written;
	sl_sha256_ctx *hash;
} dir_upload;

static int io_error(const char *what, const char *key)
{
	return sl_error_set(errno == ENOSPC ? SL_ETOOLARGE : SL_EIO, "%s for %s: %s", what, key,
	                    strerror(errno));
}

/* Opens (creating) the directory of key's last segment, segment by segment
 * from root without following symlinks. *name points into key_copy. */
static int open_parent(dir_sink *d, char *key_copy, const char *key, int *dir_out, char **name)
{
	int fd = dup(d->root_fd);
	char *seg = key_copy, *slash;

	if (fd < 0)
		return io_error("open the root directory", key);
	while ((slash = strchr(seg, '/')) != NULL) {
		*slash = '\0';
		if (mkdirat(fd, seg, 0755) == 0) {
			fsync(fd); /* the new directory's entry */
		} else if (errno != EEXIST) {
			int rc = io_error("create a directory", key);
			close(fd);
			return rc;
		}
		int next = openat(fd, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0) {
			int rc = errno == ELOOP || errno == ENOTDIR
			                 ? sl_error_set(SL_EINVAL,
			                                "%s: segment '%s' is not a directory (or "
			                                "is a symlink)",
			                                key, seg)
			                 : io_error("open a directory", key);
			close(fd);
			return rc;
		}
		close(fd);
		fd = next;
		seg = slash + 1;
	}
	*dir_out = fd;
	*name = seg;
	return SL_OK;
}

static void upload_free(dir_upload *u)
{
	if (u == NULL)
		return;
	if (u->fd >= 0) {
		close(u->fd);
		unlinkat(u->dir_fd, u->tmp_name, 0);
	}
	if (u->dir_fd >= 0)
		close(u->dir_fd);
	sl_sha256_ctx_free(u->hash);
	sl_free(u->name);
	sl_free(u->tmp_name);
	sl_free(u);
}

static int dir_begin(void *self, const char *key, uint64_t size, void **upload)
{
	dir_sink *d = self;
	dir_upload *u = NULL;
	char *key_copy = NULL, *name = NULL;
	size_t tmp_len;
	int rc;

	if ((rc = sl_key_validate(key, strlen(key))) != SL_OK)
		return rc;
	if ((u = sl_calloc(1, sizeof(*u))) == NULL || (key_copy = sl_strdup(key)) == NULL) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	u->dir_fd = u->fd = -1;
	u->size = size;
	if ((rc = open_parent(d, key_copy, key, &u->dir_fd, &name)) != SL_OK)
		goto cleanup;
	tmp_len = strlen(name) + 32;
	if ((u->name = sl_strdup(name)) == NULL || (u->tmp_name = sl_malloc(tmp_len)) == NULL ||
	    (rc = sl_sha256_ctx_new(&u->hash)) != SL_OK) {
		rc = rc != SL_OK ? rc : SL_ENOMEM;
		goto cleanup;
	}
	/* O_EXCL with a random suffix: two writers of one key never share a
	 * temporary file. */
	for (int tries = 0; u->fd < 0; tries++) {
		snprintf(u->tmp_name, tmp_len, ".%.200s.sluice-tmp-%08lx", name,
		         (unsigned long)(sl_clock_mono_ns() ^ (uint64_t)random()) & 0xffffffffUL);
		u->fd = openat(u->dir_fd, u->tmp_name,
		               O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (u->fd < 0 && (errno != EEXIST || tries > 8)) {
			rc = io_error("create a temporary file", key);
			goto cleanup;
		}
	}
	*upload = u;
	u = NULL;
	rc = SL_OK;
cleanup:
	sl_free(key_copy);
	upload_free(u);
	return rc;
}

static int dir_write(void *self, void *upload, const uint8_t *data, size_t len)
{
	dir_upload *u = upload;
	(void)self;
	if (u->written + len > u->size)
		return sl_error_set(SL_EINVAL, "%s: more bytes than the %llu announced", u->name,
		                    (unsigned long long)u->size);
	sl_sha256_update(u->hash, data, len);
	while (len > 0) {
		ssize_t n = write(u->fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return io_error("write", u->name);
		data += n;
		len -= (size_t)n;
		u->written += (uint64_t)n;
	}
	return SL_OK;
}

/* Whether the file `name` in dir_fd holds exactly size bytes hashing to want. */
static int same_file(int dir_fd, const char *name, uint64_t size, const sl_digest *want)
{
	uint8_t buf[65536];
	sl_sha256_ctx *hash = NULL;
	struct stat sb;
	sl_digest got;
	int fd, same = 0;

	if ((fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return 0;
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size != size ||
	    sl_sha256_ctx_new(&hash) != SL_OK)
		goto cleanup;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto cleanup;
		if (n == 0)
			break;
		sl_sha256_update(hash, buf, (size_t)n);
	}
	sl_sha256_final(hash, &got);
	same = sl_digest_eq(&got, want);
cleanup:
	sl_sha256_ctx_free(hash);
	close(fd);
	return same;
}

static int dir_commit(void *self, void *upload)
{
	dir_upload *u = upload;
	sl_digest digest;
	int rc = SL_OK;
	(void)self;

	if (u->written != u->size) {
		rc = sl_error_set(SL_EINVAL, "%s: %llu bytes written of %llu", u->name,
		                  (unsigned long long)u->written, (unsigned long long)u->size);
		goto cleanup;
	}
	sl_sha256_final(u->hash, &digest);
	if (same_file(u->dir_fd, u->name, u->size, &digest))
		goto cleanup; /* already there: leave it untouched */
	if (fsync(u->fd) != 0) {
		rc = io_error("fsync", u->name);
		goto cleanup;
	}
	if (renameat(u->dir_fd, u->tmp_name, u->dir_fd, u->name) != 0) {
		rc = errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST
		             ? sl_error_set(SL_ECONFLICT, "%s is a directory", u->name)
		             : io_error("rename", u->name);
		goto cleanup;
	}
	close(u->fd);
	u->fd = -1; /* renamed: nothing to remove */
	if (fsync(u->dir_fd) != 0)
		rc = io_error("fsync the directory", u->name);
cleanup:
	upload_free(u);
	return rc;
}

static int dir_remove(void *self, const char *key)
{
	dir_sink *d = self;
	char *copy = NULL, *seg, *slash;
	int fd = -1, rc = SL_OK;

	if ((rc = sl_key_validate(key, strlen(key))) != SL_OK)
		return rc;
	if ((copy = sl_strdup(key)) == NULL)
		return SL_ENOMEM;
	if ((fd = dup(d->root_fd)) < 0) {
		rc = io_error("open the root directory", key);
		goto cleanup;
	}
	for (seg = copy; (slash = strchr(seg, '/')) != NULL; seg = slash + 1) {
		*slash = '\0';
		int next = openat(fd, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0) {
			if (errno != ENOENT)
				rc = io_error("open a directory", key);
			goto cleanup; /* no directory: no file */
		}
		close(fd);
		fd = next;
	}
	if (unlinkat(fd, seg, 0) != 0) {
		if (errno != ENOENT)
			rc = errno == EISDIR ? sl_error_set(SL_ECONFLICT, "%s is a directory", key)
			                     : io_error("remove", key);
		goto cleanup;
	}
	if (fsync(fd) != 0)
		rc = io_error("fsync the directory", key);
cleanup:
	if (fd >= 0)
		close(fd);
	sl_free(copy);
	return rc;
}

static void dir_abort(void *self, void *upload)
{
	(void)self;
	upload_free(upload);
}

static int dir_flush(void *self, sl_sink_failed_fn on_failed, void *ctx)
{
	(void)self, (void)on_failed, (void)ctx;
	return SL_OK; /* every commit is durable on its own */
}

static void dir_close(void *self)
{
	dir_sink *d = self;
	if (d == NULL)
		return;
	if (d->root_fd >= 0)
		close(d->root_fd);
	sl_free(d);
}

static const sl_sink_ops dir_ops = {
        .kind = "dir",
        .begin = dir_begin,
        .write = dir_write,
        .commit = dir_commit,
        .abort = dir_abort,
        .remove = dir_remove,
        .flush = dir_flush,
        .close = dir_close,
};

int sl_dir_sink_open(sl_sink *out, const char *root)
{
	dir_sink *d = NULL;
	int rc;

	if (root == NULL || root[0] == '\0')
		return sl_error_set(SL_EINVAL, "directory sink: no path");
	if (mkdir(root, 0755) != 0 && errno != EEXIST)
		return sl_error_set(SL_EIO, "create %s: %s", root, strerror(errno));
	if ((d = sl_calloc(1, sizeof(*d))) == NULL)
		return SL_ENOMEM;
	d->root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->root_fd < 0) {
		rc = sl_error_set(SL_EIO, "open %s: %s", root, strerror(errno));
		goto cleanup;
	}
	out->ops = &dir_ops;
	out->self = d;
	return SL_OK;
cleanup:
	dir_close(d);
	return rc;
}
