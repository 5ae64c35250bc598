/*
 * The node key: an Ed25519 key pair that signs the targets a node serves.
 * Kept in DIR/node.key as the 64-byte libsodium secret key (seed then
 * public key) in hex, created with mode 0600 by an exclusive open so two
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
	size_t got = 0, n;
	FILE *f = fopen(path, "rb");

	if (!f)
		return sl_error_set(SL_EIO, "open %s: %s", path, strerror(errno));
	n = fread(text, 1, sizeof(text), f);
	fclose(f);
	if (n == KEY_HEX + 1 && text[KEY_HEX] == '\n')
		n = KEY_HEX;
	if (n != KEY_HEX || sl_hex_decode(out->sk, sizeof(out->sk), &got, text, KEY_HEX) != SL_OK ||
	    got != SL_ED25519_SK_LEN)
		return sl_error_set(SL_ECORRUPT, "%s does not hold a node key (%d hex digits)",
		                    path, KEY_HEX);
	/* The public half is stored in the secret key; check they belong
	 * together by signing and verifying. */
	memcpy(out->pk, out->sk + 32, SL_ED25519_PK_LEN);
	if (sl_ed25519_sign(sig, msg, sizeof(msg), out->sk) != SL_OK ||
	    sl_ed25519_verify(sig, msg, sizeof(msg), out->pk) != SL_OK)
		return sl_error_set(SL_ECORRUPT, "%s holds an inconsistent key pair", path);
	return SL_OK;
}

static int create_key(const char *path)
{
	sl_node_key key;
	char text[KEY_HEX + 2];
	int fd, rc = SL_OK;

	if ((rc = sl_ed25519_keypair(key.pk, key.sk)) != SL_OK)
		return rc;
	sl_hex_encode(text, key.sk, SL_ED25519_SK_LEN);
	text[KEY_HEX] = '\n';
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		return errno == EEXIST
		               ? SL_OK /* another process won */
		               : sl_error_set(SL_EIO, "create %s: %s", path, strerror(errno));
	if (write(fd, text, KEY_HEX + 1) != KEY_HEX + 1 || fsync(fd) != 0)
		rc = sl_error_set(SL_EIO, "write %s: %s", path, strerror(errno));
	close(fd);
	if (rc != SL_OK)
		unlink(path);
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
