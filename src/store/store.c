/*
 * The store: a directory with one SQLite database (sluice.db) in WAL mode
 * holding namespaces, their operation logs, MMR nodes, values and current
 * state (schema in store_internal.h). This file opens and checks the
 * database, owns the prepared statements, and manages namespaces. A
 * handle's per-namespace caches (overlay, key filter, writer frontier) and
 * the state flush are in ns_cache.c, writes in batch.c, reads and proofs
 * in read.c, verification and pruning in verify.c.
 *
 * Invariants, for every namespace N, after every SQLite transaction:
 *   I1. ops holds exactly the locations [N.pruned, N.size), and the last
 *       one (if N.size > N.pruned) is a commit whose floor, raised to
 *       N.pruned if below it, equals N.floor (only a replica's log, which
 *       starts mid-way, holds commits with floors below N.pruned).
 *       A set/update of at most SL_INLINE_VALUE_MAX bytes holds its value
 *       in its row; a larger one's value is in blobs.
 *   I2. mmr holds exactly the sl_mmr_size_for_leaves(N.size) nodes of the
 *       MMR over all N.size elements (the nodes of pruned operations stay),
 *       and N.root is its root.
 *   I3. N.pruned <= N.state_loc <= N.size, and state holds exactly the
 *       keys whose latest operation below N.state_loc is a set or an
 *       update, with that operation's location, digest and size. The
 *       current state is that, updated by the operations of
 *       [N.state_loc, N.size), which each handle replays into its overlay
 *       (store_ns_sync) and a flush writes into state in key order.
 *   I4. every operation below N.floor is inactive: a commit, a delete, or a
 *       set/update of a key whose current state points at a later
 *       location; so every live key's location is >= N.floor, and
 *       N.pruned <= N.floor (prune flushes first, so the state table never
 *       refers to a pruned operation).
 * and for the whole store:
 *   I5. blobs holds exactly the values some operation row or some dag
 *       entry refers to (V1 in values.c, which says how prune keeps it).
 * A commit moves from one such state to the next inside one SQLite write
 * transaction (BEGIN IMMEDIATE ... COMMIT), so a crash at any point leaves
 * the last commit, and readers, which read inside BEGIN ... COMMIT, see a
 * single snapshot of whole commits. sl_store_verify checks I1-I4.
 *
 * Why the overlay: a commit of random keys into a B-tree of a million
 * keys dirties one page per key, and SQLite writes each dirty page to the
 * WAL (and again at checkpoint): about 20 KB per operation, 20k op/s. With
 * the overlay, a commit appends to ops and mmr only, and a flush of 262144
 * operations sorted by key touches each state page once.
 *
 * An sl_store handle is used by one thread at a time. Several processes may
 * open the same store: SQLite serialises writers (busy_timeout_ms), and the
 * writer cache revalidates against the stored size in each transaction.
 */
#include "store/store_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const stmt_sql[STMT__COUNT] = {
        [STMT_NS_BY_NAME] = "SELECT id, kind, size, floor, root, pruned, state_loc "
                            "FROM namespaces WHERE name = ?1",
        [STMT_NS_LIST] = "SELECT name FROM namespaces ORDER BY name",
        [STMT_NS_INSERT] = "INSERT INTO namespaces(name, kind, size, floor, root, pruned, "
                           "state_loc) VALUES (?1, ?2, 0, 0, ?3, 0, 0)",
        [STMT_NS_UPDATE] = "UPDATE namespaces SET size = ?2, floor = ?3, root = ?4, pruned = ?5, "
                           "state_loc = ?6 WHERE id = ?1",
        [STMT_NS_COUNT_KEYS] = "SELECT count(*) FROM state WHERE ns = ?1",
        [STMT_OP_INSERT] = "INSERT INTO ops(id, element, value) VALUES (?1, ?2, ?3)",
        [STMT_OP_GET] = "SELECT element, value FROM ops WHERE id = ?1",
        [STMT_OP_RANGE] = "SELECT id, element, value FROM ops WHERE id >= ?1 AND id < ?2 "
                          "ORDER BY id",
        [STMT_OP_DELETE_BELOW] = "DELETE FROM ops WHERE id >= ?1 AND id < ?2",
        [STMT_CHUNK_GET] = "SELECT nodes FROM mmr WHERE id = ?1",
        [STMT_CHUNK_PUT] = "INSERT OR REPLACE INTO mmr(id, nodes) VALUES (?1, ?2)",
        [STMT_BLOB_INSERT] = "INSERT OR IGNORE INTO blobs(digest, value) VALUES (?1, ?2)",
        [STMT_BLOB_GET] = "SELECT value FROM blobs WHERE digest = ?1",
        [STMT_STATE_GET] = "SELECT loc, digest, size FROM state WHERE ns = ?1 AND key = ?2",
        [STMT_STATE_UPSERT] = "INSERT INTO state(ns, key, loc, digest, size) "
                              "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(ns, key) DO UPDATE "
                              "SET loc = excluded.loc, digest = excluded.digest, "
                              "size = excluded.size",
        [STMT_STATE_DELETE] = "DELETE FROM state WHERE ns = ?1 AND key = ?2",
        [STMT_STATE_RANGE] = "SELECT key, loc, digest, size FROM state WHERE ns = ?1 "
                             "AND key >= ?2 ORDER BY key",
        [STMT_BEGIN_READ] = "BEGIN",
        [STMT_BEGIN_WRITE] = "BEGIN IMMEDIATE",
        [STMT_COMMIT] = "COMMIT",
        [STMT_ITEM_INSERT] = "INSERT INTO items(ns, id, key) VALUES (?1, ?2, ?3)",
        [STMT_ITEM_DELETE] = "DELETE FROM items WHERE ns = ?1 AND id = ?2",
        [STMT_ITEM_KEY] = "SELECT key FROM items WHERE ns = ?1 AND id = ?2",
        [STMT_ITEM_RANGE] = "SELECT id FROM items WHERE ns = ?1 AND id >= ?2 AND id < ?3 "
                            "ORDER BY id",
        [STMT_ITEM_SUMS_GET] = "SELECT sums FROM item_sums WHERE ns = ?1 AND chunk = ?2",
        [STMT_ITEM_SUMS_PUT] = "INSERT OR REPLACE INTO item_sums(ns, chunk, sums) "
                               "VALUES (?1, ?2, ?3)",
        [STMT_ITEM_SUMS_DELETE] = "DELETE FROM item_sums WHERE ns = ?1 AND chunk = ?2",
        [STMT_ITEM_SUMS_ALL] = "SELECT chunk, sums FROM item_sums WHERE ns = ?1",
        [STMT_DATA_VERSION] = "PRAGMA data_version",
};

/* The tables of format 1; store_items_migrate adds format 2's. */
static const char schema_sql[] =
        "CREATE TABLE namespaces(\n"
        "  id INTEGER PRIMARY KEY,\n"
        "  name TEXT NOT NULL UNIQUE,\n"
        "  kind INTEGER NOT NULL,\n"
        "  size INTEGER NOT NULL,\n"
        "  floor INTEGER NOT NULL,\n"
        "  root BLOB NOT NULL,\n"
        "  pruned INTEGER NOT NULL,\n"
        "  state_loc INTEGER NOT NULL);\n"
        "CREATE TABLE ops(id INTEGER PRIMARY KEY, element BLOB NOT NULL, value BLOB);\n"
        "CREATE TABLE mmr(id INTEGER PRIMARY KEY, nodes BLOB NOT NULL);\n"
        "CREATE TABLE blobs(digest BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;\n"
        "CREATE TABLE state(\n"
        "  ns INTEGER NOT NULL,\n"
        "  key BLOB NOT NULL,\n"
        "  loc INTEGER NOT NULL,\n"
        "  digest BLOB NOT NULL,\n"
        "  size INTEGER NOT NULL,\n"
        "  PRIMARY KEY(ns, key)) WITHOUT ROWID;\n";

/* ---------------------------------------------------------------- errors */

int store_sqlite_error(sl_store *s, int rc, const char *what)
{
	char cause[SL_ERROR_CAUSE_MAX];
	const char *msg = s && s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
	int code;

	snprintf(cause, sizeof(cause), "sqlite rc=%d (%s)", rc, msg);
	switch (rc & 0xff) {
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return sl_error_set_cause(SL_ECORRUPT, cause,
		                          "%s: the store file is damaged or not a sluice store",
		                          what);
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		code = SL_EBUSY;
		break;
	case SQLITE_NOMEM:
		code = SL_ENOMEM;
		break;
	case SQLITE_CONSTRAINT:
		code = SL_EEXISTS;
		break;
	case SQLITE_READONLY:
		code = SL_EINVAL;
		break;
	default:
		code = SL_EIO;
		break;
	}
	return sl_error_set_cause(code, cause, "%s: %s", what, msg);
}

sqlite3_stmt *store_stmt(sl_store *s, enum stmt_id id)
{
	sqlite3_stmt *st = s->stmts[id];
	if (!st) {
		int rc = sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &st,
		                            NULL);
		if (rc != SQLITE_OK) {
			store_sqlite_error(s, rc, "prepare statement");
			return NULL;
		}
		s->stmts[id] = st;
	}
	sqlite3_reset(st);
	return st;
}

/* Step a statement that returns no rows and reset it. */
int store_step_done(sl_store *s, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return store_sqlite_error(s, rc, what);
	return SL_OK;
}

static int run_stmt(sl_store *s, enum stmt_id id, const char *what)
{
	sqlite3_stmt *st = store_stmt(s, id);
	if (!st)
		return sl_error_last()->code;
	return store_step_done(s, st, what);
}

int store_begin_read(sl_store *s)
{
	return run_stmt(s, STMT_BEGIN_READ, "begin read");
}

int store_begin_write(sl_store *s)
{
	if (s->readonly)
		return sl_error_set(SL_EINVAL, "store %s is open read-only", s->dir);
	return run_stmt(s, STMT_BEGIN_WRITE, "begin write");
}

int store_commit_txn(sl_store *s)
{
	return run_stmt(s, STMT_COMMIT, "commit");
}

/* Roll back if a transaction is open; keeps the current error message. */
void store_rollback_txn(sl_store *s)
{
	if (sqlite3_get_autocommit(s->db))
		return;
	sl_error saved = *sl_error_last();
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	if (saved.code != SL_OK)
		sl_error_set_cause(saved.code, saved.cause, "%s", saved.message);
}

/* ------------------------------------------------------------------- open */

/* Format 4: namespace ids are never given twice (AUTOINCREMENT keeps the
 * largest one ever used), so dropping the newest namespace (a resync's
 * side copy, replica.c) cannot hand its id to the next one, which another
 * process's cache of the dropped one would take for its own. The table is
 * rebuilt with the same rows and ids. */
static const char ns_ids_sql[] =
        "CREATE TABLE namespaces_v4(\n"
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
        "  name TEXT NOT NULL UNIQUE,\n"
        "  kind INTEGER NOT NULL,\n"
        "  size INTEGER NOT NULL,\n"
        "  floor INTEGER NOT NULL,\n"
        "  root BLOB NOT NULL,\n"
        "  pruned INTEGER NOT NULL,\n"
        "  state_loc INTEGER NOT NULL);\n"
        "INSERT INTO namespaces_v4 SELECT id, name, kind, size, floor, root, pruned, state_loc "
        "FROM namespaces;\n"
        "DROP TABLE namespaces;\n"
        "ALTER TABLE namespaces_v4 RENAME TO namespaces;\n";

void sl_store_options_init(sl_store_options *o)
{
	memset(o, 0, sizeof(*o));
	o->durable = 1;
	o->busy_timeout_ms = 5000;
	o->state_flush_ops = SL_STATE_FLUSH_OPS_DEFAULT;
}

static int mkdir_p(const char *dir)
{
	char path[4096];
	size_t len = strlen(dir);
	if (len == 0 || len >= sizeof(path))
		return sl_error_set(SL_EINVAL, "bad store directory '%s'", dir);
	memcpy(path, dir, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		char saved = path[i];
		path[i] = '\0';
		if (mkdir(path, 0777) != 0 && errno != EEXIST) {
			char cause[64];
			snprintf(cause, sizeof(cause), "errno=%d", errno);
			return sl_error_set_cause(SL_EIO, cause, "create directory %s: %s", path,
			                          strerror(errno));
		}
		path[i] = saved;
	}
	return SL_OK;
}

off_t store_file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_size : -1;
}

/* Cheap structural check of the database header, so a truncated or
 * foreign file is reported as such instead of surfacing later as a failed
 * query. See the SQLite file format, "The Database Header": page size at
 * 16, change counter at 24, page count at 28 (valid when the
 * version-valid-for number at 92 equals the change counter).
 *
 * The header is read through SQLite's own handle of the file, once the
 * connection is open: opening and closing the file here would drop every
 * POSIX lock this process holds on it, those of its other connections
 * included (SQLite, "How To Corrupt", 2.2), and another process could
 * then take the WAL from under them. */
static int precheck_file(sl_store *s, const char *db_path, off_t size)
{
	uint8_t hdr[100];
	char wal_path[4300];
	sqlite3_file *f = NULL;

	if (size < (off_t)sizeof(hdr))
		return sl_error_set(SL_ECORRUPT, "store file %s is truncated (%lld bytes)", db_path,
		                    (long long)size);
	if (sqlite3_file_control(s->db, "main", SQLITE_FCNTL_FILE_POINTER, &f) != SQLITE_OK || !f ||
	    !f->pMethods)
		return sl_error_set(SL_EIO, "open %s: no file handle", db_path);
	if (f->pMethods->xRead(f, hdr, sizeof(hdr), 0) != SQLITE_OK)
		return sl_error_set(SL_EIO, "read %s: short read", db_path);
	if (memcmp(hdr, "SQLite format 3", 16) != 0)
		return sl_error_set(SL_ECORRUPT, "%s is not a sluice store (not a SQLite database)",
		                    db_path);
	uint32_t page_size = ((uint32_t)hdr[16] << 8) | hdr[17];
	if (page_size == 1)
		page_size = 65536;
	uint32_t change = sl_be32_get(hdr + 24), pages = sl_be32_get(hdr + 28);
	uint32_t valid_for = sl_be32_get(hdr + 92);
	/* With a non-empty WAL, a checkpoint may have been cut short after
	 * writing page 1; the WAL still holds every page, so skip. */
	snprintf(wal_path, sizeof(wal_path), "%s-wal", db_path);
	if (store_file_size(wal_path) > 32)
		return SL_OK;
	if (valid_for == change && pages > 0 && (uint64_t)size < (uint64_t)pages * page_size)
		return sl_error_set(
		        SL_ECORRUPT, "store file %s is truncated: %lld of %llu bytes present",
		        db_path, (long long)size, (unsigned long long)pages * page_size);
	return SL_OK;
}

int store_pragma_int(sl_store *s, const char *sql, int64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*out = sqlite3_column_int64(st, 0);
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_OK ? SL_OK : store_sqlite_error(s, rc, sql);
}

static int exec_sql(sl_store *s, const char *sql)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? SL_OK : store_sqlite_error(s, rc, "set up store");
}

static int create_schema(sl_store *s)
{
	char pragmas[128];
	int rc;
	if ((rc = exec_sql(s, "BEGIN IMMEDIATE")) != SL_OK)
		return rc;
	snprintf(pragmas, sizeof(pragmas), "PRAGMA application_id = %d; PRAGMA user_version = %d;",
	         SL_APPLICATION_ID, SL_SCHEMA_VERSION);
	if ((rc = exec_sql(s, schema_sql)) != SL_OK || (rc = store_items_migrate(s)) != SL_OK ||
	    (rc = store_dag_migrate(s)) != SL_OK || (rc = store_values_migrate(s)) != SL_OK ||
	    (rc = exec_sql(s, ns_ids_sql)) != SL_OK || (rc = exec_sql(s, pragmas)) != SL_OK ||
	    (rc = exec_sql(s, "COMMIT")) != SL_OK) {
		store_rollback_txn(s);
		return rc;
	}
	s->format = SL_SCHEMA_VERSION;
	return SL_OK;
}

/* An older format, brought up to date in one transaction: format 1 to 2
 * adds the item index (computed from the state tables), 2 to 3 the dag
 * tables, 3 to 4 the index of what refers to each value (values.c) and
 * namespace ids that are never given twice (ns_ids_sql). A
 * read-only handle keeps the format it found and reads all that format
 * has. */
static int upgrade_schema(sl_store *s, const char *db_path, int64_t version)
{
	char pragma[64];
	int rc;

	s->format = (int)version;
	if (s->readonly)
		return SL_OK;
	snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d;", SL_SCHEMA_VERSION);
	if ((rc = exec_sql(s, "BEGIN IMMEDIATE")) != SL_OK)
		return rc;
	if ((version < 2 && (rc = store_items_migrate(s)) != SL_OK) ||
	    (version < 3 && (rc = store_dag_migrate(s)) != SL_OK) ||
	    (version < 4 && ((rc = store_values_migrate(s)) != SL_OK ||
	                     (rc = exec_sql(s, ns_ids_sql)) != SL_OK)) ||
	    (rc = exec_sql(s, pragma)) != SL_OK || (rc = exec_sql(s, "COMMIT")) != SL_OK) {
		store_rollback_txn(s);
		return sl_error_wrap("upgrade %s to format %d", db_path, SL_SCHEMA_VERSION);
	}
	sl_log(SL_LOG_INFO, "upgraded the store", "path=%s from=%lld format=%d", db_path,
	       (long long)version, SL_SCHEMA_VERSION);
	s->format = SL_SCHEMA_VERSION;
	return SL_OK;
}

static int check_schema(sl_store *s, int may_create, const char *db_path)
{
	int64_t app_id = 0, version = 0;
	int rc;
	if ((rc = store_pragma_int(s, "PRAGMA application_id", &app_id)) != SL_OK ||
	    (rc = store_pragma_int(s, "PRAGMA user_version", &version)) != SL_OK)
		return rc;
	if (app_id == 0 && version == 0) {
		int64_t n_tables = 0;
		if ((rc = store_pragma_int(s, "SELECT count(*) FROM sqlite_schema", &n_tables)) !=
		    SL_OK)
			return rc;
		if (n_tables != 0 || !may_create)
			return sl_error_set(SL_ECORRUPT, "%s is not a sluice store", db_path);
		return create_schema(s);
	}
	if (app_id != SL_APPLICATION_ID)
		return sl_error_set(SL_ECORRUPT, "%s is not a sluice store (application id %lld)",
		                    db_path, (long long)app_id);
	if (version >= 1 && version < SL_SCHEMA_VERSION)
		return upgrade_schema(s, db_path, version);
	if (version != SL_SCHEMA_VERSION)
		return sl_error_set(SL_EINVAL,
		                    "%s has store format %lld; this sluice reads formats 1 to %d",
		                    db_path, (long long)version, SL_SCHEMA_VERSION);
	s->format = SL_SCHEMA_VERSION;
	return SL_OK;
}

int sl_store_open(sl_store **out, const char *dir, const sl_store_options *opts)
{
	sl_store_options defaults;
	sl_store *s = NULL;
	char db_path[4200], pragmas[256];
	int rc, flags;
	off_t size;

	if (!opts) {
		sl_store_options_init(&defaults);
		opts = &defaults;
	}
	if (!dir || !*dir)
		return sl_error_set(SL_EINVAL, "no store directory given");
	if (strlen(dir) > 4000)
		return sl_error_set(SL_EINVAL, "store directory path too long");
	snprintf(db_path, sizeof(db_path), "%s/sluice.db", dir);

	size = store_file_size(db_path);
	if (size < 0) {
		if (!(opts->flags & SL_STORE_CREATE))
			return sl_error_set(SL_ENOTFOUND,
			                    "no store at %s (run `sluice init -d %s`)", dir, dir);
		if ((rc = mkdir_p(dir)) != SL_OK)
			return rc;
	} else if (size == 0) {
		/* Only a missing file is created: an empty one may be what is left
		 * of a store, and SQLite would write a header into it. */
		return sl_error_set(SL_ECORRUPT,
		                    "store file %s is empty; it is not a sluice store (remove it "
		                    "to create a new store there)",
		                    db_path);
	}

	s = sl_calloc(1, sizeof(*s));
	if (!s)
		return SL_ENOMEM;
	s->readonly = (opts->flags & SL_STORE_READONLY) != 0;
	s->state_flush_ops =
	        opts->state_flush_ops ? opts->state_flush_ops : SL_STATE_FLUSH_OPS_DEFAULT;
	if (!(s->dir = sl_strdup(dir))) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	flags = s->readonly ? SQLITE_OPEN_READONLY
	                    : SQLITE_OPEN_READWRITE |
	                              (opts->flags & SL_STORE_CREATE ? SQLITE_OPEN_CREATE : 0);
	rc = sqlite3_open_v2(db_path, &s->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		rc = store_sqlite_error(s, rc, "open store");
		goto cleanup;
	}
	if (size > 0 && (rc = precheck_file(s, db_path, size)) != SL_OK)
		goto cleanup;
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, opts->busy_timeout_ms > 0 ? opts->busy_timeout_ms : 5000);
	snprintf(pragmas, sizeof(pragmas),
	         "%s PRAGMA synchronous = %s; PRAGMA cache_size = -65536; "
	         "PRAGMA temp_store = MEMORY; PRAGMA mmap_size = 268435456; PRAGMA "
	         "wal_autocheckpoint = 16384;",
	         s->readonly ? "" : "PRAGMA journal_mode = WAL;",
	         opts->durable ? "FULL" : "NORMAL");
	if ((rc = exec_sql(s, pragmas)) != SL_OK)
		goto cleanup;
	if ((rc = check_schema(s, !s->readonly && (opts->flags & SL_STORE_CREATE), db_path)) !=
	    SL_OK)
		goto cleanup;
	*out = s;
	s = NULL;
	rc = SL_OK;
cleanup:
	if (rc != SL_OK && s)
		sl_error_wrap("open store %s", dir);
	sl_store_free(s);
	return rc;
}

void sl_store_free(sl_store *s)
{
	if (!s)
		return;
	for (int i = 0; i < STMT__COUNT; i++)
		sqlite3_finalize(s->stmts[i]);
	store_caches_free(s);
	sqlite3_close(s->db);
	sl_free(s->dir);
	sl_free(s);
}

const char *sl_store_path(const sl_store *s)
{
	return s->dir;
}

/* ------------------------------------------------------------- namespaces */

static int read_digest_column(sqlite3_stmt *st, int col, sl_digest *out)
{
	if (sqlite3_column_bytes(st, col) != SL_DIGEST_LEN)
		return sl_error_set(SL_ECORRUPT, "stored digest has %d bytes",
		                    sqlite3_column_bytes(st, col));
	memcpy(out->bytes, sqlite3_column_blob(st, col), SL_DIGEST_LEN);
	return SL_OK;
}

int store_ns_load(sl_store *s, const char *name, ns_row *out)
{
	int rc = store_ns_load_any(s, name, out);
	if (rc == SL_OK && out->kind == SL_NS_DAG)
		return sl_error_set(
		        SL_EINVAL,
		        "namespace '%s' is a dag namespace: it holds signed entries, not "
		        "an operation log (see `sluice dag`)",
		        name);
	return rc;
}

int store_ns_load_any(sl_store *s, const char *name, ns_row *out)
{
	sqlite3_stmt *st;
	ns_row row;
	int rc;

	if ((rc = store_ns_name_validate(name)) != SL_OK)
		return rc;
	if (!(st = store_stmt(s, STMT_NS_BY_NAME)))
		return sl_error_last()->code;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		sqlite3_reset(st);
		return sl_error_set(SL_ENOTFOUND, "no namespace '%s'", name);
	}
	if (rc != SQLITE_ROW) {
		rc = store_sqlite_error(s, rc, "read namespace");
		sqlite3_reset(st);
		return rc;
	}
	memset(&row, 0, sizeof(row));
	row.id = sqlite3_column_int64(st, 0);
	int64_t kind = sqlite3_column_int64(st, 1);
	int64_t size = sqlite3_column_int64(st, 2), floor = sqlite3_column_int64(st, 3);
	int64_t pruned = sqlite3_column_int64(st, 5), state_loc = sqlite3_column_int64(st, 6);
	rc = read_digest_column(st, 4, &row.root);
	sqlite3_reset(st);
	if (rc != SL_OK)
		return rc;
	if ((kind != SL_NS_IMMUTABLE && kind != SL_NS_MUTABLE && kind != SL_NS_DAG) || size < 0 ||
	    (uint64_t)size >= SL_LOC_LIMIT || floor < 0 || floor > size || pruned < 0 ||
	    pruned > floor || state_loc < pruned || state_loc > size || row.id <= 0 ||
	    row.id >= SL_NS_ID_LIMIT)
		return sl_error_set(SL_ECORRUPT, "namespace '%s': stored header is inconsistent",
		                    name);
	row.kind = (sl_ns_kind)kind;
	row.size = (uint64_t)size;
	row.floor = (uint64_t)floor;
	row.pruned = (uint64_t)pruned;
	row.state_loc = (uint64_t)state_loc;
	snprintf(row.name, sizeof(row.name), "%s", name);
	*out = row;
	return SL_OK;
}

int store_ns_insert(sl_store *s, const char *name, sl_ns_kind kind)
{
	sqlite3_stmt *st;
	sl_digest empty;
	ns_row existing;
	int rc;

	if ((rc = store_ns_name_validate(name)) != SL_OK)
		return rc;
	if (kind != SL_NS_IMMUTABLE && kind != SL_NS_MUTABLE && kind != SL_NS_DAG)
		return sl_error_set(SL_EINVAL, "unknown namespace kind %d", (int)kind);
	rc = store_ns_load_any(s, name, &existing);
	if (rc == SL_OK)
		return sl_error_set(SL_EEXISTS, "namespace '%s' already exists (%s)", name,
		                    sl_ns_kind_name(existing.kind));
	if (rc != SL_ENOTFOUND)
		return rc;
	sl_error_clear();
	sl_mmr_root_digest(&empty, 0, NULL, 0);
	if (!(st = store_stmt(s, STMT_NS_INSERT)))
		return sl_error_last()->code;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, (int)kind);
	sqlite3_bind_blob(st, 3, empty.bytes, SL_DIGEST_LEN, SQLITE_STATIC);
	if ((rc = store_step_done(s, st, "create namespace")) != SL_OK)
		return rc;
	if (sqlite3_last_insert_rowid(s->db) >= SL_NS_ID_LIMIT)
		return sl_error_set(SL_ETOOLARGE, "too many namespaces");
	return SL_OK;
}

int sl_store_ns_create(sl_store *s, const char *name, sl_ns_kind kind)
{
	int rc;

	if (kind == SL_NS_DAG)
		return sl_error_set(SL_EINVAL, "a dag namespace starts with a signed root entry: "
		                               "create it with sl_dag_create");
	if ((rc = store_begin_write(s)) != SL_OK)
		return rc;
	if ((rc = store_ns_insert(s, name, kind)) == SL_OK)
		rc = store_commit_txn(s);
	if (rc != SL_OK)
		store_rollback_txn(s);
	return rc;
}

/* Live keys: the state table's count, corrected by the overlay entries
 * that add a key the table lacks or delete one it has. */
int store_count_live_keys(sl_store *s, ns_cache *c, uint64_t *out)
{
	sqlite3_stmt *st = store_stmt(s, STMT_NS_COUNT_KEYS);
	int64_t n;
	int rc;

	if (!st)
		return sl_error_last()->code;
	sqlite3_bind_int64(st, 1, c->ns_id);
	rc = sqlite3_step(st);
	n = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW)
		return store_sqlite_error(s, rc, "count keys");
	for (size_t i = 0; i < c->ov.cap; i++) {
		const overlay_entry *e = (const overlay_entry *)c->ov.slots[i];
		state_entry in_table;
		if (!e)
			continue;
		rc = store_state_get(s, c->ns_id, e->head.key, e->head.key_len, &in_table);
		if (rc != SL_OK && rc != SL_ENOTFOUND)
			return rc;
		if (rc == SL_OK && e->deleted)
			n--;
		else if (rc == SL_ENOTFOUND && !e->deleted)
			n++;
	}
	*out = (uint64_t)n;
	return SL_OK;
}

static void info_from_row(sl_ns_info *out, const ns_row *row)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", row->name);
	out->kind = row->kind;
	out->target.size = row->size;
	out->target.root = row->root;
	out->target.floor = row->floor;
	out->pruned = row->pruned;
}

static int ns_info_locked(sl_store *s, const char *name, sl_ns_info *out)
{
	ns_row row;
	ns_cache *c;
	uint64_t keys;
	int rc;

	if ((rc = store_ns_load_any(s, name, &row)) != SL_OK)
		return rc;
	if (row.kind == SL_NS_DAG) {
		rc = store_dag_count_keys(s, &row, &keys);
	} else if ((rc = store_ns_sync_row(s, &row, &c)) == SL_OK) {
		rc = store_count_live_keys(s, c, &keys);
	}
	if (rc != SL_OK)
		return rc;
	info_from_row(out, &row);
	out->keys = keys;
	return SL_OK;
}

int sl_store_ns_info(sl_store *s, const char *name, sl_ns_info *out)
{
	int rc;
	if ((rc = store_begin_read(s)) != SL_OK)
		return rc;
	rc = ns_info_locked(s, name, out);
	if (rc == SL_OK)
		rc = store_commit_txn(s);
	if (rc != SL_OK)
		store_rollback_txn(s);
	return rc;
}

int sl_store_ns_head(sl_store *s, const char *name, sl_ns_info *out)
{
	ns_row row;
	int rc;
	if ((rc = store_begin_read(s)) != SL_OK)
		return rc;
	rc = store_ns_load(s, name, &row);
	store_rollback_txn(s);
	if (rc != SL_OK)
		return rc;
	info_from_row(out, &row);
	return SL_OK;
}

int sl_store_ns_list(sl_store *s, sl_ns_info **out, size_t *n_out)
{
	sl_ns_info *list = NULL;
	size_t n = 0, cap = 0;
	char **names = NULL;
	sqlite3_stmt *st;
	int rc;

	if ((rc = store_begin_read(s)) != SL_OK)
		return rc;
	if (!(st = store_stmt(s, STMT_NS_LIST))) {
		rc = sl_error_last()->code;
		goto cleanup;
	}
	/* Collect names first: ns_info_locked reuses other statements. */
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char **grown = sl_grow(names, &cap, n, sizeof(*names), 8);
		if (!grown) {
			rc = SL_ENOMEM;
			sqlite3_reset(st);
			goto cleanup;
		}
		names = grown;
		if (!(names[n] = sl_strdup((const char *)sqlite3_column_text(st, 0)))) {
			rc = SL_ENOMEM;
			sqlite3_reset(st);
			goto cleanup;
		}
		n++;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		rc = store_sqlite_error(s, rc, "list namespaces");
		goto cleanup;
	}
	if (n > 0 && !(list = sl_calloc(n, sizeof(*list)))) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	for (size_t i = 0; i < n; i++)
		if ((rc = ns_info_locked(s, names[i], &list[i])) != SL_OK)
			goto cleanup;
	if ((rc = store_commit_txn(s)) != SL_OK)
		goto cleanup;
	*out = list;
	*n_out = n;
	list = NULL;
cleanup:
	if (rc != SL_OK)
		store_rollback_txn(s);
	for (size_t i = 0; i < n; i++)
		sl_free(names[i]);
	sl_free(names);
	sl_free(list);
	return rc;
}

/* ------------------------------------------------------ shared row access */

int store_op_get(sl_store *s, int64_t ns_id, uint64_t loc, sl_buf *element, sl_buf *value,
                 int *has_value)
{
	sqlite3_stmt *st = store_stmt(s, STMT_OP_GET);
	int rc;
	if (!st)
		return sl_error_last()->code;
	sqlite3_bind_int64(st, 1, store_pack_id(ns_id, loc));
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		rc = sl_buf_set(element, sqlite3_column_blob(st, 0),
		                (size_t)sqlite3_column_bytes(st, 0));
		if (rc == SL_OK && value) {
			*has_value = sqlite3_column_type(st, 1) != SQLITE_NULL;
			rc = sl_buf_set(value, sqlite3_column_blob(st, 1),
			                (size_t)sqlite3_column_bytes(st, 1));
		}
	} else if (rc == SQLITE_DONE) {
		rc = sl_error_set(SL_ECORRUPT, "operation %llu is missing from the log",
		                  (unsigned long long)loc);
	} else {
		rc = store_sqlite_error(s, rc, "read operation");
	}
	sqlite3_reset(st);
	return rc;
}

int store_op_put(sl_store *s, int64_t ns_id, uint64_t loc, const sl_buf *element, const void *value,
                 size_t value_len, int has_value)
{
	sqlite3_stmt *st = store_stmt(s, STMT_OP_INSERT);
	if (!st)
		return sl_error_last()->code;
	sqlite3_bind_int64(st, 1, store_pack_id(ns_id, loc));
	sqlite3_bind_blob(st, 2, element->data, (int)element->len, SQLITE_STATIC);
	if (has_value)
		sqlite3_bind_blob(st, 3, value_len ? value : "", (int)value_len, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 3);
	return store_step_done(s, st, "append operation");
}

int store_value_get(sl_store *s, int64_t ns_id, const state_entry *st, sl_buf *value)
{
	sl_buf element = SL_BUF_INIT(2 * SL_KEY_MAX);
	sl_digest actual;
	int rc, has_value = 0;

	if (st->size <= SL_INLINE_VALUE_MAX) {
		rc = store_op_get(s, ns_id, st->loc, &element, value, &has_value);
		if (rc == SL_OK && !has_value)
			rc = sl_error_set(SL_ECORRUPT, "operation %llu lost its value",
			                  (unsigned long long)st->loc);
	} else {
		rc = store_blob_get(s, &st->digest, value);
	}
	if (rc != SL_OK)
		goto cleanup;
	sl_sha256(&actual, value->data, value->len);
	if (!sl_digest_eq(&actual, &st->digest) || value->len != st->size)
		rc = sl_error_set(SL_ECORRUPT, "value of operation %llu does not match its digest",
		                  (unsigned long long)st->loc);
cleanup:
	sl_buf_free(&element);
	return rc;
}

int store_state_get(sl_store *s, int64_t ns_id, const char *key, size_t key_len, state_entry *out)
{
	sqlite3_stmt *st = store_stmt(s, STMT_STATE_GET);
	int rc;
	if (!st)
		return sl_error_last()->code;
	sqlite3_bind_int64(st, 1, ns_id);
	sqlite3_bind_blob(st, 2, key, (int)key_len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->loc = (uint64_t)sqlite3_column_int64(st, 0);
		out->size = (uint64_t)sqlite3_column_int64(st, 2);
		if (sqlite3_column_bytes(st, 1) != SL_DIGEST_LEN) {
			rc = sl_error_set(SL_ECORRUPT, "state entry for '%.*s' is damaged",
			                  (int)key_len, key);
		} else {
			memcpy(out->digest.bytes, sqlite3_column_blob(st, 1), SL_DIGEST_LEN);
			rc = SL_OK;
		}
	} else if (rc == SQLITE_DONE) {
		/* The common case on a commit's hot path; callers that report
		 * it to a user set the message themselves. */
		rc = SL_ENOTFOUND;
	} else {
		rc = store_sqlite_error(s, rc, "read state");
	}
	sqlite3_reset(st);
	return rc;
}

int store_blob_get(sl_store *s, const sl_digest *digest, sl_buf *value)
{
	sqlite3_stmt *q = store_stmt(s, STMT_BLOB_GET);
	int rc;
	if (!q)
		return sl_error_last()->code;
	sqlite3_bind_blob(q, 1, digest->bytes, SL_DIGEST_LEN, SQLITE_STATIC);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		rc = sl_buf_set(value, sqlite3_column_blob(q, 0),
		                (size_t)sqlite3_column_bytes(q, 0));
	else if (rc == SQLITE_DONE)
		rc = sl_error_set(SL_ECORRUPT, "value %s is missing", sl_digest_to_hex(digest).s);
	else
		rc = store_sqlite_error(s, rc, "read a value");
	sqlite3_reset(q);
	return rc;
}

int store_blob_put(sl_store *s, const sl_digest *digest, const void *value, size_t len)
{
	sqlite3_stmt *st = store_stmt(s, STMT_BLOB_INSERT);
	if (!st)
		return sl_error_last()->code;
	sqlite3_bind_blob(st, 1, digest->bytes, SL_DIGEST_LEN, SQLITE_STATIC);
	sqlite3_bind_blob64(st, 2, len ? value : "", len, SQLITE_STATIC);
	return store_step_done(s, st, "store value");
}

/* ----------------------------------------------------------- chunk reader */

void chunk_reader_init(chunk_reader *r, sl_store *s, int64_t ns_id)
{
	r->store = s;
	r->ns_id = ns_id;
	r->chunk = UINT64_MAX;
	r->n_nodes = 0;
}

int store_chunk_load(sl_store *s, int64_t ns_id, uint64_t chunk, sl_digest *nodes, size_t *n_nodes)
{
	sqlite3_stmt *st = store_stmt(s, STMT_CHUNK_GET);
	int rc, bytes;
	if (!st)
		return sl_error_last()->code;
	sqlite3_bind_int64(st, 1, store_pack_id(ns_id, chunk));
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		*n_nodes = 0;
		rc = SL_OK;
	} else if (rc == SQLITE_ROW) {
		bytes = sqlite3_column_bytes(st, 0);
		if (bytes <= 0 || bytes % SL_DIGEST_LEN != 0 ||
		    bytes > SL_CHUNK_NODES * SL_DIGEST_LEN) {
			rc = sl_error_set(SL_ECORRUPT, "MMR chunk %llu has %d bytes",
			                  (unsigned long long)chunk, bytes);
		} else {
			memcpy(nodes, sqlite3_column_blob(st, 0), (size_t)bytes);
			*n_nodes = (size_t)bytes / SL_DIGEST_LEN;
			rc = SL_OK;
		}
	} else {
		rc = store_sqlite_error(s, rc, "read MMR nodes");
	}
	sqlite3_reset(st);
	return rc;
}

int chunk_reader_get(void *ctx, uint64_t pos, sl_digest *out)
{
	chunk_reader *r = ctx;
	uint64_t chunk = pos / SL_CHUNK_NODES;
	size_t idx = (size_t)(pos % SL_CHUNK_NODES);
	int rc;
	if (chunk != r->chunk) {
		r->chunk = UINT64_MAX;
		if ((rc = store_chunk_load(r->store, r->ns_id, chunk, r->nodes, &r->n_nodes)) !=
		    SL_OK)
			return rc;
		r->chunk = chunk;
	}
	if (idx >= r->n_nodes)
		return sl_error_set(SL_ECORRUPT, "MMR node %llu is missing",
		                    (unsigned long long)pos);
	*out = r->nodes[idx];
	return SL_OK;
}

sl_mmr_nodes chunk_reader_nodes(chunk_reader *r)
{
	sl_mmr_nodes nodes = {chunk_reader_get, r};
	return nodes;
}

/* ------------------------------------------------------- namespace rows */

int store_ns_write(sl_store *s, const ns_row *row)
{
	sqlite3_stmt *st = store_stmt(s, STMT_NS_UPDATE);
	if (!st)
		return sl_error_last()->code;
	sqlite3_bind_int64(st, 1, row->id);
	sqlite3_bind_int64(st, 2, (int64_t)row->size);
	sqlite3_bind_int64(st, 3, (int64_t)row->floor);
	sqlite3_bind_blob(st, 4, row->root.bytes, SL_DIGEST_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (int64_t)row->pruned);
	sqlite3_bind_int64(st, 6, (int64_t)row->state_loc);
	return store_step_done(s, st, "update namespace");
}
