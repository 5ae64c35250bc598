/*
 * The sync client's resync (client.c, C5): which namespace a sync writes,
 * and, for a replica whose server pruned what it needs, the side copy it
 * is rebuilt in and the swap that puts it in the local one's place.
 */
#include "sync/client_internal.h"

#include <stdio.h>
#include <string.h>

/* The side namespace in which replica `name` is rebuilt: a reserved name,
 * which the store takes and users cannot create (store/key.c): ".resync."
 * and the name, or for a name too long for that its first 39 bytes, '-'
 * and 16 hex digits of its SHA-256, 64 bytes in all. */
void client_resync_name(char out[SL_NS_NAME_MAX + 1], const char *name)
{
	const char *prefix = ".resync.";
	size_t len = strlen(name);

	if (strlen(prefix) + len <= SL_NS_NAME_MAX) {
		snprintf(out, SL_NS_NAME_MAX + 1, "%s%s", prefix, name);
	} else {
		sl_digest d;
		char hex[2 * SL_DIGEST_LEN + 1];
		sl_sha256(&d, name, len);
		sl_hex_encode(hex, d.bytes, SL_DIGEST_LEN);
		snprintf(out, SL_NS_NAME_MAX + 1, "%s%.39s-%.16s", prefix, name, hex);
	}
}

static int drop_side(client *c, const char *why)
{
	int rc = sl_store_ns_drop(c->o->store, c->side_ns);
	if (rc == SL_OK)
		sl_log(SL_LOG_INFO, "dropped the side copy of a replica being rebuilt",
		       "ns=%s side=%s reason=\"%s\"", c->local_ns, c->side_ns, why);
	return rc;
}

/* Which namespace this sync writes, and where it stands (check_local).
 *
 * A mutable replica whose server pruned operations it still needs (the
 * server answers 410, to the consistency proof from the local size or to
 * a range) is rebuilt in the side namespace from the server's floor, as a
 * new replica is, while the local namespace is left as it is, readable;
 * once the side copy's root equals the target's, it takes the local
 * name in one store transaction (sync_once, C5). A side namespace found
 * here is an earlier run's, cut short: it is resumed like any replica
 * (C4), or dropped and begun again when the server pruned past it too,
 * or when there is no local namespace left to keep readable. */
int client_choose_local(client *c)
{
	sl_ns_info info;
	int pruned = c->pruned_past, side, rc;

	c->pruned_past = 0;
	c->resyncing = 0;
	c->apply_ns = c->local_ns;
	if (c->target.kind != SL_NS_MUTABLE) { /* never pruned */
		rc = client_check_local(c);
		return rc == SYNC_ERR_PRUNED ? client_pruned_refused(c) : rc;
	}
	if ((rc = sl_store_ns_head(c->o->store, c->side_ns, &info)) != SL_OK && rc != SL_ENOTFOUND)
		return rc;
	side = rc == SL_OK;
	if ((rc = sl_store_ns_head(c->o->store, c->local_ns, &info)) == SL_ENOTFOUND) {
		if (side && (rc = drop_side(c, "no local namespace to keep")) != SL_OK)
			return rc;
		return client_check_local(c);
	}
	if (rc != SL_OK || (rc = client_check_kind(c, &info)) != SL_OK)
		return rc;
	if (side && pruned) {
		if ((rc = drop_side(c, "the server pruned past it")) != SL_OK)
			return rc;
		side = 0;
	}
	if (side || pruned) {
		c->resyncing = 1;
		c->apply_ns = c->side_ns;
	}
	if ((rc = client_check_local(c)) != SYNC_ERR_PRUNED)
		return rc;
	if (c->resyncing) {
		if ((rc = drop_side(c, "the server pruned past it")) != SL_OK)
			return rc;
	} else {
		c->resyncing = 1;
		c->apply_ns = c->side_ns;
	}
	c->local_exists = 0;
	c->local_size = 0;
	return SL_OK;
}

/* After a resync's root match: the side copy takes the local name. */
int client_replace_local(client *c, const sl_ns_info *side)
{
	int rc;
	if ((rc = sl_store_ns_replace(c->o->store, c->local_ns, c->side_ns)) != SL_OK)
		return rc;
	sl_metric_add(c->m.resyncs, 1);
	sl_log(SL_LOG_WARN,
	       "replaced the local namespace with a copy rebuilt from the server's floor",
	       "ns=%s size=%llu floor=%llu", c->local_ns, (unsigned long long)side->target.size,
	       (unsigned long long)side->pruned);
	c->resyncing = 0;
	c->apply_ns = c->local_ns;
	return SL_OK;
}
