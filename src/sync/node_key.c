/*
 * The node key: an Ed25519 key pair that signs the targets a node serves.
 * Kept in DIR/node.key as the 64-byte libsodium secret key (seed then
 * public key) in hex, created with mode 0600 and linked into place, so two
 * processes starting at once cannot write two keys. A file that does not
 * hold a consistent key is an error; it is never overwritten.
 */
#include "sluice/sync.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define KEY_FILE "node.key"
#define KEY_HEX  (2 * SL_ED25519_SK_LEN)

static int read_key(sl_node_key *out, const char *path)
{
	char text[KEY_HEX + 2];
	uint8_t msg[1] = {0}, sig[SL_ED25519_SIG_LEN];
	sl_node_key key;
	size_t got = 0, n;
	FILE *f = fopen(path, "rb");
	int rc = SL_OK;

	if (!f)
		return sl_error_set(SL_EIO, "open %s: %s", path, strerror(errno));
	n = fread(text, 1, sizeof(text), f);
	fclose(f);
	if (n == KEY_HEX + 1 && text[KEY_HEX] == '\n')
		n = KEY_HEX;
	if (n != KEY_HEX || sl_hex_decode(key.sk, sizeof(key.sk), &got, text, KEY_HEX) != SL_OK ||
	    got != SL_ED25519_SK_LEN) {
		rc = sl_error_set(SL_ECORRUPT, "%s does not hold a node key (%d hex digits)", path,
		                  KEY_HEX);
		goto cleanup;
	}
	/* The public half is stored in the secret key; check they belong
	 * together by signing and verifying. */
	memcpy(key.pk, key.sk + 32, SL_ED25519_PK_LEN);
	if (sl_ed25519_sign(sig, msg, sizeof(msg), key.sk) != SL_OK ||
	    sl_ed25519_verify(sig, msg, sizeof(msg), key.pk) != SL_OK) {
		rc = sl_error_set(SL_ECORRUPT, "%s holds an inconsistent key pair", path);
		goto cleanup;
	}
	*out = key;
cleanup:
	memset(&key, 0, sizeof(key));
	memset(text, 0, sizeof(text));
	return rc;
}

/* Write the key to a temporary file, then link it into place: link()
 * fails if the name exists, so of two processes starting at once one
 * wins and the other reads a complete file. */
static int create_key(const char *path)
{
	sl_node_key key;
	char text[KEY_HEX + 2], tmp[4200];
	int fd = -1, rc = SL_OK;

	if ((rc = sl_ed25519_keypair(key.pk, key.sk)) != SL_OK)
		return rc;
	sl_hex_encode(text, key.sk, SL_ED25519_SK_LEN);
	text[KEY_HEX] = '\n';
	snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0) {
		rc = sl_error_set(SL_EIO, "create %s: %s", tmp, strerror(errno));
		goto cleanup;
	}
	if (write(fd, text, KEY_HEX + 1) != KEY_HEX + 1 || fsync(fd) != 0) {
		rc = sl_error_set(SL_EIO, "write %s: %s", tmp, strerror(errno));
		goto cleanup;
	}
	if (link(tmp, path) != 0 && errno != EEXIST) /* EEXIST: another process won */
		rc = sl_error_set(SL_EIO, "create %s: %s", path, strerror(errno));
cleanup:
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	memset(&key, 0, sizeof(key));
	memset(text, 0, sizeof(text));
	return rc;
}

int sl_node_key_load(sl_node_key *out, const char *dir, int create)
{
	char path[4096];
	int rc;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, KEY_FILE) >= sizeof(path))
		return sl_error_set(SL_EINVAL, "store path too long");
	if (access(path, F_OK) != 0) {
		if (!create)
			return sl_error_set(SL_ENOTFOUND, "no node key at %s", path);
		if ((rc = create_key(path)) != SL_OK)
			return rc;
	}
	return read_key(out, path);
}
