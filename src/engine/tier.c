/* Opening an L3 tier by its type (tier.h), for the engine and the diff's
 * own handle on L3, so both know every tier. */
#include "engine/tier.h"
#include "sluice/engine.h"

int sl_tier_open(sl_tier *out, int type, const char *dir_or_url, const char *ns_or_table,
                 unsigned timeout_ms)
{
	switch (type) {
	case SL_L3_STORE:
		return sl_tier_store_open(out, dir_or_url, ns_or_table, timeout_ms);
	case SL_L3_POSTGRESQL:
		return sl_tier_pg_open(out, dir_or_url, ns_or_table, timeout_ms);
	case SL_L3_MYSQL:
		return sl_tier_mysql_open(out, dir_or_url, ns_or_table, timeout_ms);
	default:
		return sl_error_set(SL_EINVAL, "unknown L3 type %d", type);
	}
}
