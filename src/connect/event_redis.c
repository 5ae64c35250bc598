/* The Redis stream event source: the entries of one stream as events,
 * read with plain commands on one hiredis connection. Nothing is written
 * to Redis (no consumer group, no pending list), so any number of mirrors
 * can read one stream, and the position the mirror stores, with the state
 * it saves next to it, is all there is to resume from.
 *
 * Positions. The entry MS-SEQ is at position MS << 20 | SEQ. An entry is
 * an event by its fields (sl_redis_source_options in
 * sluice/event_source.h); sl_redis_entry_parse maps one.
 *
 * A read from `from` is one round trip, P being the id of position
 * from - 1 (0-0 when from is 0):
 *
 *   MULTI
 *   TYPE key                      "none": an empty stream; not "stream": SL_EINVAL
 *   XINFO STREAM key              N length, A entries-added, F recorded-first-entry-id,
 *                                 L last-generated-id, D max-deleted-entry-id
 *   XREAD COUNT n STREAMS key P   the entries after P: m <= n of them
 *   EXEC
 *
 * When that gives nothing to return and wait_ms > 0, XREAD BLOCK w COUNT 1
 * STREAMS key P waits for an entry after P (what it answers is dropped)
 * and the round trip is made again. head() is the round trip without the
 * XREAD: end = pos(L) + 1, 0 for a missing key or L = 0-0.
 *
 * What Redis 7 keeps of removed entries: D is the largest id XDEL removed
 * (0-0 when none; a trim, XTRIM or XADD with MAXLEN or MINID, leaves it
 * alone), F is the first entry the stream holds (0-0 when it holds none;
 * whatever a trim removed is below it), and A counts every entry ever
 * added. None says whether a trim took an entry the caller had not read:
 * that needs C(x), the number of entries ever added with ids below
 * position x. The source learns C as it reads (R4) and keeps it for the
 * last few positions it met (anchors); save_state gives them, "POS:C ...",
 * the newest first, and the mirror stores that with the position it
 * commits, so a later run knows C there whichever of them it was.
 *
 * Invariants:
 *   R1  Positions are ordered as ids are: SEQ < 2^20 and MS < 2^44 fit
 *       without overlap, so pos(a) < pos(b) exactly when a < b, and pos + 1
 *       is "right after that entry" (XREAD's "after P"). An id outside
 *       (SEQ >= 2^20, MS >= 2^44, or the one id at 2^64 - 1, which has no
 *       position after it) is SL_ECORRUPT, naming it, where a read meets
 *       it. Ids Redis makes itself (MS = its clock, SEQ counting the
 *       entries of one millisecond) stay inside until the year 2527 and
 *       below a million entries a millisecond; only ids given to XADD
 *       explicitly can be refused.
 *   R2  A read's checks and the entries it returns are of one moment:
 *       MULTI/EXEC runs TYPE, XINFO and XREAD with no other client's
 *       command between them, so no trim or XDEL falls between the check
 *       and the entries.
 *   R3  The caller has read every entry below `from`. An entry at or after
 *       it was removed unread exactly when
 *         (a) D is not 0-0 and D >= id(from): the entry D; or
 *         (b) N = 0 and L >= id(from): every entry up to L is gone; or
 *         (c) N > 0, D < id(from) < F and C(from) < A - N: every removed
 *             entry is below F (XDEL's are <= D, a trim's below F), so
 *             A - N entries were added below F, more than the C(from)
 *             below `from`.
 *       Otherwise XDEL's removals are below `from`, a trim's below
 *       F <= id(from) or, with F > id(from) and C(from) = A - N, all
 *       among the entries read. The check is exact when C(from) is known;
 *       when it is not (a position this source did not reach: set by
 *       hand, restored with another state, or part of a batch a mirror
 *       committed alone) and (c) could hold, the read reports the gap and
 *       its message says it may hold no entry.
 *   R4  C is only ever known exactly: C(0) = 0; a read with no removal at
 *       or after `from` that reached the end (m < n) and has F <= id(from)
 *       or N = 0 gives C(from) = A - m; one that returns k entries with no
 *       removal at or after `from` has C(next) = C(from) + k; a gap's next
 *       has C = A after (b), A - N at F, and A - m after D when F < D and
 *       the read reached the end. Returning entries kept between removed
 *       ones (R5) loses C until one of these gives it back. A stream
 *       deleted and made again counts from 0: a C above A - N is no
 *       longer known.
 *   R5  A gap is reported after the entries kept before it: with (a) and
 *       F < D, the entries below D the stream still holds are returned
 *       first, as normal reads (XDEL can remove one between kept ones);
 *       the read that finds none below D returns SL_ENOTFOUND with
 *       *next = pos(D) + 1. The gap ends right after L for (b), and at F
 *       for (c) and for (a) with F > D (nothing is kept below F). A gap's
 *       read appends nothing; from its *next, reading goes on. An entry
 *       removed between kept ones is thus reported in the gap at D, after
 *       the kept ones before D.
 *   R6  Every entry returned passed R3's check of its own round trip: the
 *       blocking XREAD only wakes the read, and its answer is dropped.
 *   R7  L never goes back while the key lives, so an existing stream whose
 *       L is below P is not the one the position was read from (deleted
 *       and written again with lower ids, or another stream): SL_EINVAL.
 *       A deleted key cannot be told from one never written: it is an
 *       empty stream; what it held is checked by R3 once it is written
 *       again.
 *   R8  Every call has a deadline: timeout_ms to connect and per command,
 *       timeout_ms + w for the blocking XREAD. A call that fails drops the
 *       connection (its replies may be left half read) and the read
 *       returns SL_EIO, or SL_ETIMEOUT for a deadline, with nothing
 *       appended; the next read connects again. Credentials refused
 *       (AUTH, NOAUTH, WRONGPASS, NOPERM) are SL_EAUTH.
 *
 * Memory: XREAD asks for at most max_events entries, fewer once entries
 * were seen: about as many as max_bytes holds at their average size, so a
 * read of large values does not carry many it must drop. XINFO STREAM
 * answers the first and last entries whole too; each read carries them.
 * hiredis writes with write(2): a process that uses this source ignores
 * SIGPIPE (the CLI does), or a write on a connection Redis closed kills it.
 * XSETID can set L, D and A by hand; the checks then go by what it set.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "connect/event_internal.h"
/* The engine's parser of redis:// URLs, one for every Redis sluice talks to. */
#include "connect/server_url.h"

#define SEQ_BITS           20
#define SEQ_LIMIT          ((uint64_t)1 << SEQ_BITS)
#define MS_LIMIT           ((uint64_t)1 << (64 - SEQ_BITS))
#define TIMEOUT_DEFAULT_MS 10000
#define WAIT_MAX_MS        30000 /* one read waits at most this long */
#define FIRST_COUNT        16    /* entries asked for before their size is known */
#define COUNT_MAX          10000
#define SEEN_MAX           4096 /* entries the size estimate remembers, about */
#define SHOW_MAX           40   /* bytes of a field's text shown in a message */
#define SHOW_CAP           (SHOW_MAX * 4 + 8)
#define N_FIELDS           4 /* key, op, value, version */
#define ANCHORS            4 /* positions whose C is kept */

typedef struct stream_id {
	uint64_t ms, seq;
} stream_id;

typedef struct anchor {
	uint64_t pos, count; /* C(pos) = count */
} anchor;

typedef struct redis_src {
	char name[sizeof(((sl_event_source *)0)->name)]; /* for messages */
	sl_server_url url;
	char *stream;
	char *field_names[N_FIELDS];    /* owned; version's may be NULL */
	sl_redis_source_options fields; /* the names above, for the parse */
	unsigned timeout_ms;
	redisContext *conn;
	uint64_t bytes_seen, n_seen; /* key and value bytes of entries read */
	const char **parts;          /* one entry's fields and values */
	size_t *part_lens, parts_cap;
	anchor anchors[ANCHORS]; /* C at positions (R4), the newest first */
	size_t n_anchors;
} redis_src;

/* What one round trip saw (R2). */
typedef struct snapshot {
	redisReply *exec; /* owns entries */
	int exists;
	uint64_t length, added;             /* N, A */
	stream_id first, last, max_deleted; /* F, L, D */
	const redisReply *entries;          /* XREAD's entries, NULL when none */
	size_t asked;                       /* n */
} snapshot;

/* What a read makes of a round trip (R3, R4, R5). */
typedef struct verdict {
	int count_known; /* C(from) */
	uint64_t count;
	int keeps_count; /* C(next) = C(from) + the entries returned */
	int gap, maybe;  /* maybe: C(from) is not known (R3) */
	stream_id limit; /* with gap: the entries below it come first */
	stream_id end;   /* the gap ends after it (after_end) or at it */
	int after_end;
	int end_count_known; /* C at the gap's end */
	uint64_t end_count;
} verdict;

/* ------------------------------------------------------------------ ids */

/* [s, s + len) as a decimal below 2^64; strict: no leading zero (but "0"),
 * as Redis writes ids. */
static int decimal(uint64_t *out, const char *s, size_t len, int strict)
{
	uint64_t v = 0;

	if (len == 0 || (strict && len > 1 && s[0] == '0'))
		return 0;
	for (size_t i = 0; i < len; i++) {
		uint64_t d = (uint64_t)(s[i] - '0');
		if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - d) / 10)
			return 0;
		v = v * 10 + d;
	}
	*out = v;
	return 1;
}

/* Any id Redis writes, positioned or not (R1). */
static int id_parse(stream_id *out, const char *id)
{
	const char *dash = strchr(id, '-');
	return dash && decimal(&out->ms, id, (size_t)(dash - id), 1) &&
	       decimal(&out->seq, dash + 1, strlen(dash + 1), 1);
}

static int id_cmp(stream_id a, stream_id b)
{
	if (a.ms != b.ms)
		return a.ms < b.ms ? -1 : 1;
	return a.seq < b.seq ? -1 : a.seq > b.seq;
}

static int id_zero(stream_id a)
{
	return a.ms == 0 && a.seq == 0;
}

static stream_id id_of(uint64_t pos)
{
	stream_id id = {pos >> SEQ_BITS, pos & (SEQ_LIMIT - 1)};
	return id;
}

static void id_text(char *out, size_t cap, stream_id id)
{
	snprintf(out, cap, "%" PRIu64 "-%" PRIu64, id.ms, id.seq);
}

/* Up to SHOW_MAX bytes of s for a message: printable ASCII as it is,
 * other bytes as \xNN, "..." when cut. */
static const char *show(char out[SHOW_CAP], const char *s, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len && i < SHOW_MAX; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			out[n++] = (char)c;
		else
			n += (size_t)snprintf(out + n, SHOW_CAP - n, "\\x%02x", c);
	}
	if (len > SHOW_MAX)
		n += (size_t)snprintf(out + n, SHOW_CAP - n, "...");
	out[n] = '\0';
	return out;
}

int sl_redis_id_to_pos(uint64_t *out, const char *id)
{
	char shown[SHOW_CAP];
	stream_id v;

	if (!id || !id_parse(&v, id))
		return sl_error_set(SL_ECORRUPT,
		                    "stream entry id '%s' is not MS-SEQ (two decimals)",
		                    id ? show(shown, id, strlen(id)) : "(null)");
	if (v.seq >= SEQ_LIMIT || v.ms >= MS_LIMIT ||
	    (v.ms == MS_LIMIT - 1 && v.seq == SEQ_LIMIT - 1))
		return sl_error_set(SL_ECORRUPT,
		                    "stream entry %s has no position: a source position holds "
		                    "ids with a sequence number below 2^20 and a time below "
		                    "2^44 ms only",
		                    id);
	*out = v.ms << SEQ_BITS | v.seq;
	return SL_OK;
}

void sl_redis_pos_to_id(char *out, size_t cap, uint64_t pos)
{
	id_text(out, cap, id_of(pos));
}

/* ---------------------------------------------------------------- entries */

static const char *name_or(const char *name, const char *dflt)
{
	return name && *name ? name : dflt;
}

/* The field names of o, defaults filled in; SL_EINVAL when two are one. */
static int names_of(const char *names[N_FIELDS], const sl_redis_source_options *o)
{
	names[0] = name_or(o ? o->key_field : NULL, "key");
	names[1] = name_or(o ? o->op_field : NULL, "op");
	names[2] = name_or(o ? o->value_field : NULL, "value");
	names[3] = name_or(o ? o->version_field : NULL, NULL);
	for (int i = 0; i < N_FIELDS; i++)
		for (int j = i + 1; j < N_FIELDS; j++)
			if (names[i] && names[j] && strcmp(names[i], names[j]) == 0)
				return sl_error_set(SL_EINVAL,
				                    "redis source: two fields are named '%.64s' "
				                    "(key, op, value and version need their own)",
				                    names[i]);
	return SL_OK;
}

static int entry_error(const char *id, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int entry_error(const char *id, const char *fmt, ...)
{
	char msg[SL_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return sl_error_set(SL_ECORRUPT, "stream entry %s: %s", id, msg);
}

static int text_is(const char *s, size_t len, const char *text)
{
	return len == strlen(text) && memcmp(s, text, len) == 0;
}

int sl_redis_entry_parse(sl_event_batch *out, const char *id, const char *const *fields,
                         const size_t *lens, size_t n_fields_and_values,
                         const sl_redis_source_options *o)
{
	const char *names[N_FIELDS], *found[N_FIELDS] = {NULL};
	size_t found_len[N_FIELDS] = {0};
	int has[N_FIELDS] = {0};
	sl_event_op op = SL_EVENT_SET;
	char shown[SHOW_CAP];
	uint64_t pos, version;
	int rc;

	if ((rc = names_of(names, o)) != SL_OK || (rc = sl_redis_id_to_pos(&pos, id)) != SL_OK)
		return rc;
	if (n_fields_and_values % 2 != 0)
		return entry_error(id, "an odd number of fields and values (%zu)",
		                   n_fields_and_values);
	for (size_t i = 0; i < n_fields_and_values; i += 2)
		for (int k = 0; k < N_FIELDS; k++) {
			if (!names[k] || !text_is(fields[i], lens[i], names[k]))
				continue;
			if (has[k])
				return entry_error(id, "two '%.64s' fields", names[k]);
			has[k] = 1;
			found[k] = fields[i + 1];
			found_len[k] = lens[i + 1];
		}
	if (!has[0])
		return entry_error(id, "no '%.64s' field (the key)", names[0]);
	if (found_len[0] == 0 || memchr(found[0], '\0', found_len[0]))
		return entry_error(id, "the key is empty or holds a NUL byte");
	if (has[1] && text_is(found[1], found_len[1], "update"))
		op = SL_EVENT_UPDATE;
	else if (has[1] && text_is(found[1], found_len[1], "delete"))
		op = SL_EVENT_DELETE;
	else if (has[1] && !text_is(found[1], found_len[1], "set"))
		return entry_error(id, "the '%.64s' field is '%s', not set, update or delete",
		                   names[1], show(shown, found[1], found_len[1]));
	if (op == SL_EVENT_DELETE && has[2])
		return entry_error(id, "a delete with a '%.64s' field", names[2]);
	version = pos + 1; /* no overflow: R1 */
	if (names[3] && !has[3])
		return entry_error(id, "no '%.64s' field (the version)", names[3]);
	if (names[3] && (!decimal(&version, found[3], found_len[3], 0) || version == 0))
		return entry_error(id,
		                   "the '%.64s' field is '%s', not a decimal integer from 1 to "
		                   "2^64 - 1",
		                   names[3], show(shown, found[3], found_len[3]));
	return sl_event_batch_add(out, pos, op, found[0], found_len[0], has[2] ? found[2] : NULL,
	                          has[2] ? found_len[2] : 0, version);
}

/* ------------------------------------------------------------ connection */

static struct timeval tv_of(uint64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	return tv;
}

static void drop(redis_src *r)
{
	if (r->conn)
		redisFree(r->conn);
	r->conn = NULL;
}

/* The error of a call that failed on the connection, which is dropped
 * (R8): SL_ETIMEOUT when a deadline passed, else SL_EIO. */
static int conn_error(redis_src *r, const char *what)
{
	int saved = errno, code = SL_EIO, rc;
	const char *msg = r->conn && r->conn->errstr[0] ? r->conn->errstr : "no answer";

	if (r->conn && r->conn->err == REDIS_ERR_IO &&
	    (saved == EAGAIN || saved == EWOULDBLOCK || saved == ETIMEDOUT ||
	     strcmp(msg, strerror(EAGAIN)) == 0 || strcmp(msg, strerror(ETIMEDOUT)) == 0))
		code = SL_ETIMEOUT;
	rc = sl_error_set(code, "%s: %s: %s%s", r->name, what, msg,
	                  code == SL_ETIMEOUT ? " (no answer within the timeout)" : "");
	drop(r);
	return rc;
}

/* The error Redis answered, as a code: credentials refused are SL_EAUTH;
 * a key of another type, a command the server lacks, or a cluster's
 * redirect (a cluster is not served) SL_EINVAL; the rest (loading, busy,
 * out of memory) SL_EIO, for a read again later. */
static int reply_error(redis_src *r, const char *what, const redisReply *reply)
{
	const char *msg = reply->str ? reply->str : "";
	int code = SL_EIO, rc;

	if (strncmp(msg, "NOAUTH", 6) == 0 || strncmp(msg, "WRONGPASS", 9) == 0 ||
	    strncmp(msg, "NOPERM", 6) == 0)
		code = SL_EAUTH;
	else if (strncmp(msg, "WRONGTYPE", 9) == 0 ||
	         strncmp(msg, "ERR unknown command", 19) == 0 || strncmp(msg, "MOVED", 5) == 0)
		code = SL_EINVAL;
	rc = sl_error_set(code, "%s: %s: %.200s", r->name, what, msg);
	drop(r);
	return rc;
}

static int bad_answer(redis_src *r, const char *what)
{
	int rc = sl_error_set(SL_EIO, "%s: an answer to %s that is not Redis 7's", r->name, what);
	drop(r);
	return rc;
}

/* Sends one command and reads its reply into *out (an error reply too):
 * 1, or 0 with *rc set when the connection failed. */
static int call(redis_src *r, const char *what, int argc, const char **argv, int *rc,
                redisReply **out)
{
	size_t lens[8];

	for (int i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	if (!(*out = redisCommandArgv(r->conn, argc, argv, lens))) {
		*rc = conn_error(r, what);
		return 0;
	}
	return 1;
}

/* A command whose answer is only OK: an error reply is `refused` (AUTH's
 * is about the credentials, SELECT's about the database number). */
static int simple(redis_src *r, int argc, const char **argv, int refused)
{
	redisReply *reply;
	int rc = SL_OK;

	if (!call(r, argv[0], argc, argv, &rc, &reply))
		return rc;
	if (reply->type == REDIS_REPLY_ERROR) {
		rc = sl_error_set(refused, "%s: %s: %.200s", r->name, argv[0], reply->str);
		drop(r);
	}
	freeReplyObject(reply);
	return rc;
}

/* Connects, with AUTH and SELECT, unless connected. */
static int ensure_conn(redis_src *r)
{
	int rc = SL_OK;

	if (r->conn)
		return SL_OK;
	r->conn = redisConnectWithTimeout(r->url.host, (int)r->url.port, tv_of(r->timeout_ms));
	if (!r->conn)
		return sl_error_set(SL_ENOMEM, "%s: no memory for a connection", r->name);
	if (r->conn->err)
		return conn_error(r, "connect");
	if (redisSetTimeout(r->conn, tv_of(r->timeout_ms)) != REDIS_OK)
		return conn_error(r, "set the timeout");
	redisEnableKeepAlive(r->conn);
	if (r->url.password && r->url.password[0]) {
		const char *with_user[] = {"AUTH", r->url.user, r->url.password};
		const char *alone[] = {"AUTH", r->url.password};
		rc = r->url.user ? simple(r, 3, with_user, SL_EAUTH)
		                 : simple(r, 2, alone, SL_EAUTH);
	}
	if (rc == SL_OK && r->url.db) {
		char db[16];
		const char *argv[] = {"SELECT", db};
		snprintf(db, sizeof(db), "%u", r->url.db);
		rc = simple(r, 2, argv, SL_EINVAL);
	}
	return rc;
}

/* ------------------------------------------------------------ round trip */

static void snapshot_free(snapshot *s)
{
	if (s->exec)
		freeReplyObject(s->exec);
	memset(s, 0, sizeof(*s));
}

static const redisReply *info_field(const redisReply *info, const char *name)
{
	for (size_t i = 0; i + 1 < info->elements; i += 2)
		if (info->element[i]->type == REDIS_REPLY_STRING &&
		    strcmp(info->element[i]->str, name) == 0)
			return info->element[i + 1];
	return NULL;
}

static int info_id(stream_id *out, const redisReply *info, const char *name)
{
	const redisReply *v = info_field(info, name);
	return v && v->type == REDIS_REPLY_STRING && id_parse(out, v->str);
}

static int info_number(uint64_t *out, const redisReply *info, const char *name)
{
	const redisReply *v = info_field(info, name);
	if (!v || v->type != REDIS_REPLY_INTEGER || v->integer < 0)
		return 0;
	*out = (uint64_t)v->integer;
	return 1;
}

/* N, A, F, L and D from XINFO STREAM's answer. */
static int read_info(redis_src *r, const redisReply *info, snapshot *s)
{
	if (info->type == REDIS_REPLY_ERROR)
		return reply_error(r, "XINFO STREAM", info);
	if (info->type != REDIS_REPLY_ARRAY || !info_number(&s->length, info, "length") ||
	    !info_id(&s->last, info, "last-generated-id"))
		return bad_answer(r, "XINFO STREAM");
	if (!info_field(info, "max-deleted-entry-id") || !info_field(info, "entries-added") ||
	    !info_field(info, "recorded-first-entry-id")) {
		drop(r);
		return sl_error_set(SL_EINVAL,
		                    "%s: the server does not say which entries were removed from "
		                    "a stream (XINFO STREAM without max-deleted-entry-id, "
		                    "entries-added, recorded-first-entry-id: Redis 7 or later has "
		                    "them), so entries removed before they were read could not be "
		                    "told",
		                    r->name);
	}
	if (!info_id(&s->max_deleted, info, "max-deleted-entry-id") ||
	    !info_number(&s->added, info, "entries-added") ||
	    !info_id(&s->first, info, "recorded-first-entry-id") || s->added < s->length ||
	    (s->length > 0 && id_zero(s->first)))
		return bad_answer(r, "XINFO STREAM");
	return SL_OK;
}

/* XREAD's entries of the stream (NULL when none). */
static int read_entries(redis_src *r, const redisReply *xread, snapshot *s)
{
	const redisReply *stream;

	if (xread->type == REDIS_REPLY_NIL)
		return SL_OK;
	if (xread->type == REDIS_REPLY_ERROR)
		return reply_error(r, "XREAD", xread);
	if (xread->type != REDIS_REPLY_ARRAY || xread->elements != 1 ||
	    (stream = xread->element[0])->type != REDIS_REPLY_ARRAY || stream->elements != 2 ||
	    stream->element[1]->type != REDIS_REPLY_ARRAY)
		return bad_answer(r, "XREAD");
	s->entries = stream->element[1];
	if (s->entries->elements > s->asked || s->entries->elements > s->length)
		return bad_answer(r, "XREAD");
	return SL_OK;
}

/* One round trip (R2): the stream's state and, with count > 0, up to count
 * entries after position from - 1. */
static int snapshot_take(redis_src *r, uint64_t from, size_t count, snapshot *s)
{
	char after[SL_REDIS_ID_MAX], count_text[24];
	const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
	const char *type[] = {"TYPE", r->stream};
	const char *info[] = {"XINFO", "STREAM", r->stream};
	const char *xread[] = {"XREAD", "COUNT", count_text, "STREAMS", r->stream, after};
	const char **argvs[] = {multi, type, info, xread, exec};
	int argcs[] = {1, 2, 3, 6, 1}, n = count > 0 ? 5 : 4, rc;
	const redisReply *exec_type;

	memset(s, 0, sizeof(*s));
	if (count == 0) { /* head: no XREAD */
		argvs[3] = exec;
		argcs[3] = 1;
	}
	if ((rc = ensure_conn(r)) != SL_OK)
		return rc;
	sl_redis_pos_to_id(after, sizeof(after), from ? from - 1 : 0);
	snprintf(count_text, sizeof(count_text), "%zu", count);
	for (int i = 0; i < n; i++) {
		size_t lens[6];
		for (int j = 0; j < argcs[i]; j++)
			lens[j] = strlen(argvs[i][j]);
		if (redisAppendCommandArgv(r->conn, argcs[i], argvs[i], lens) != REDIS_OK) {
			drop(r);
			return sl_error_set(SL_ENOMEM, "%s: no memory for a command", r->name);
		}
	}
	for (int i = 0; i < n; i++) {
		redisReply *reply = NULL;
		if (redisGetReply(r->conn, (void **)&reply) != REDIS_OK || !reply)
			return conn_error(r, "read the stream");
		if (i < n - 1) { /* OK, QUEUED */
			rc = reply->type == REDIS_REPLY_ERROR
			             ? reply_error(r, i == 0 ? "MULTI" : argvs[i][0], reply)
			             : SL_OK;
			freeReplyObject(reply);
			if (rc != SL_OK)
				return rc; /* the connection is dropped with what is unread */
			continue;
		}
		s->exec = reply;
	}
	if (s->exec->type == REDIS_REPLY_ERROR) {
		rc = reply_error(r, "EXEC", s->exec);
		snapshot_free(s);
		return rc;
	}
	if (s->exec->type != REDIS_REPLY_ARRAY || s->exec->elements != (size_t)(n - 2) ||
	    (exec_type = s->exec->element[0])->type != REDIS_REPLY_STATUS) {
		snapshot_free(s);
		return bad_answer(r, "MULTI/EXEC");
	}
	if (strcmp(exec_type->str, "none") == 0)
		return SL_OK; /* a missing key: an empty stream (R7) */
	if (strcmp(exec_type->str, "stream") != 0) {
		rc = sl_error_set(SL_EINVAL, "%s: the key holds a %.32s, not a stream", r->name,
		                  exec_type->str);
		snapshot_free(s);
		return rc;
	}
	s->exists = 1;
	s->asked = count;
	if ((rc = read_info(r, s->exec->element[1], s)) != SL_OK ||
	    (count > 0 && (rc = read_entries(r, s->exec->element[2], s)) != SL_OK))
		snapshot_free(s);
	return rc;
}

/* XREAD BLOCK: returns once an entry after position from - 1 is there, or
 * wait_ms passed; what it answers is dropped (R6). */
static int wait_for_entry(redis_src *r, uint64_t from, uint64_t wait_ms)
{
	char after[SL_REDIS_ID_MAX], block[24];
	const char *argv[] = {"XREAD", "BLOCK", block, "COUNT", "1", "STREAMS", r->stream, after};
	redisReply *reply;
	int rc = SL_OK;

	if (wait_ms > WAIT_MAX_MS)
		wait_ms = WAIT_MAX_MS;
	sl_redis_pos_to_id(after, sizeof(after), from ? from - 1 : 0);
	snprintf(block, sizeof(block), "%" PRIu64, wait_ms);
	if (redisSetTimeout(r->conn, tv_of(r->timeout_ms + wait_ms)) != REDIS_OK)
		return conn_error(r, "set the timeout");
	if (!call(r, "XREAD BLOCK", 8, argv, &rc, &reply))
		return rc;
	if (reply->type == REDIS_REPLY_ERROR)
		rc = reply_error(r, "XREAD BLOCK", reply);
	freeReplyObject(reply);
	if (rc != SL_OK)
		return rc;
	if (redisSetTimeout(r->conn, tv_of(r->timeout_ms)) != REDIS_OK)
		return conn_error(r, "set the timeout");
	return SL_OK;
}

/* ------------------------------------------------------------------ read */

/* XREAD's COUNT: max_events, or what the room left in the batch holds at
 * the entries' average size (see "Memory" above). */
static size_t count_for(const redis_src *r, const sl_event_batch *out, size_t max_events,
                        size_t max_bytes)
{
	size_t count = max_events < COUNT_MAX ? max_events : COUNT_MAX;
	uint64_t room = out->bytes < max_bytes ? max_bytes - out->bytes : 0, fit;

	if (r->n_seen == 0)
		return count < FIRST_COUNT ? count : FIRST_COUNT;
	fit = room / (r->bytes_seen / r->n_seen + 1) + 1;
	return fit < count ? (size_t)fit : count;
}

static void seen(redis_src *r, const sl_event *e)
{
	r->bytes_seen += e->key_len + e->value_len;
	if (++r->n_seen > SEEN_MAX) {
		r->bytes_seen /= 2;
		r->n_seen /= 2;
	}
}

/* Appends the event of one of XREAD's entries ([id, [field, value, ...]]). */
static int take_entry(redis_src *r, const redisReply *e, sl_event_batch *out)
{
	const redisReply *fv = e->element[1];
	int rc;

	if (fv->elements > r->parts_cap) {
		const char **parts = sl_realloc(r->parts, fv->elements * sizeof(*parts));
		size_t *lens;
		if (!parts)
			return SL_ENOMEM;
		r->parts = parts;
		if (!(lens = sl_realloc(r->part_lens, fv->elements * sizeof(*lens))))
			return SL_ENOMEM;
		r->part_lens = lens;
		r->parts_cap = fv->elements;
	}
	for (size_t i = 0; i < fv->elements; i++) {
		if (fv->element[i]->type != REDIS_REPLY_STRING)
			return bad_answer(r, "XREAD");
		r->parts[i] = fv->element[i]->str;
		r->part_lens[i] = fv->element[i]->len;
	}
	if ((rc = sl_redis_entry_parse(out, e->element[0]->str, r->parts, r->part_lens,
	                               fv->elements, &r->fields)) != SL_OK)
		return rc == SL_ECORRUPT ? sl_error_wrap("%s", r->name) : rc;
	seen(r, &out->events[out->n - 1]);
	return SL_OK;
}

/* SL_EINVAL when the stream is not the one `from` was read from (R7). */
static int check_not_past(redis_src *r, const snapshot *s, uint64_t from)
{
	char after[SL_REDIS_ID_MAX], last[SL_REDIS_ID_MAX];

	if (!s->exists || from == 0 || id_cmp(id_of(from - 1), s->last) <= 0)
		return SL_OK;
	sl_redis_pos_to_id(after, sizeof(after), from - 1);
	id_text(last, sizeof(last), s->last);
	return sl_error_set(SL_EINVAL,
	                    "%s: the position (after id %s) is past the stream's last id %s: "
	                    "the stream was deleted and written again with lower ids, or the "
	                    "position is another stream's",
	                    r->name, after, last);
}

/* ---------------------------------------------------------------- counts */

/* C(pos) = count, as the newest anchor. */
static void remember(redis_src *r, uint64_t pos, uint64_t count)
{
	size_t i = 0;

	if (pos == 0)
		return; /* C(0) = 0 is never forgotten */
	while (i < r->n_anchors && r->anchors[i].pos != pos)
		i++;
	if (i == r->n_anchors && r->n_anchors < ANCHORS)
		r->n_anchors++;
	if (i == ANCHORS)
		i--; /* the oldest goes */
	memmove(&r->anchors[1], &r->anchors[0], i * sizeof(r->anchors[0]));
	r->anchors[0].pos = pos;
	r->anchors[0].count = count;
}

/* C(pos), when known (R4). */
static int recall(const redis_src *r, uint64_t pos, uint64_t *count)
{
	if (pos == 0) {
		*count = 0;
		return 1;
	}
	for (size_t i = 0; i < r->n_anchors; i++)
		if (r->anchors[i].pos == pos) {
			*count = r->anchors[i].count;
			return 1;
		}
	return 0;
}

static void gap_at(verdict *v, stream_id limit, stream_id end, int after_end, int count_known,
                   uint64_t count)
{
	v->gap = 1;
	v->limit = limit;
	v->end = end;
	v->after_end = after_end;
	v->end_count_known = count_known;
	v->end_count = count;
}

/* R3, R4 and R5 on one round trip from `from`. */
static void judge(const redis_src *r, const snapshot *s, uint64_t from, verdict *v)
{
	stream_id at = id_of(from);
	size_t m = s->entries ? s->entries->elements : 0;
	int reached_end = m < s->asked;
	uint64_t added_below_first = s->added - s->length; /* A - N, all below F in (c) */

	memset(v, 0, sizeof(*v));
	v->count_known = recall(r, from, &v->count);
	if (!s->exists) {
		v->keeps_count = v->count_known; /* nothing is returned */
		return;
	}
	if (!id_zero(s->max_deleted) && id_cmp(s->max_deleted, at) >= 0) { /* (a) */
		if (s->length == 0)
			gap_at(v, s->last, s->last, 1, 1, s->added);
		else if (id_cmp(s->first, s->max_deleted) > 0)
			gap_at(v, s->first, s->first, 0, 1, added_below_first);
		else
			gap_at(v, s->max_deleted, s->max_deleted, 1, reached_end, s->added - m);
		return;
	}
	if (s->length == 0) { /* (b), or every entry ever added is below `from` */
		if (!id_zero(s->last) && id_cmp(s->last, at) >= 0) {
			gap_at(v, s->last, s->last, 1, 1, s->added);
			return;
		}
	} else if (id_cmp(s->first, at) > 0) { /* (c) */
		if (!v->count_known || v->count != added_below_first) {
			gap_at(v, s->first, s->first, 0, 1, added_below_first);
			v->maybe = !v->count_known || v->count > added_below_first;
			return;
		}
		v->keeps_count = 1;
		return;
	}
	if (reached_end) { /* no removal at or after `from` */
		v->count_known = 1;
		v->count = s->added - m;
	}
	v->keeps_count = v->count_known;
}

/* The gap's SL_ENOTFOUND (R5), *next at its end. */
static int gap_error(redis_src *r, const verdict *v, uint64_t from, uint64_t *next)
{
	char first[SL_REDIS_ID_MAX], end[SL_REDIS_ID_MAX];
	uint64_t pos;

	id_text(end, sizeof(end), v->end);
	if (sl_redis_id_to_pos(&pos, end) != SL_OK)
		return sl_error_wrap("%s: where entries removed before they were read end",
		                     r->name);
	sl_redis_pos_to_id(first, sizeof(first), from);
	*next = v->after_end ? pos + 1 : pos;
	if (v->end_count_known)
		remember(r, *next, v->end_count);
	if (v->maybe)
		return sl_error_set(SL_ENOTFOUND,
		                    "%s: the stream's first entry is now %s, past the position "
		                    "(id %s), and entries between them may have been removed "
		                    "before they were read: this source has not counted the "
		                    "entries before the position (it did not read up to it, or "
		                    "the stream was made again), so it cannot tell; reading goes "
		                    "on at %s",
		                    r->name, end, first, end);
	return sl_error_set(SL_ENOTFOUND,
	                    "%s: entries from id %s %s id %s were removed from the stream "
	                    "(XTRIM, MAXLEN, MINID or XDEL) before they were read: the "
	                    "position is older than what the stream kept; reading goes on %s %s",
	                    r->name, first, v->after_end ? "through" : "up to, not including,", end,
	                    v->after_end ? "after" : "at", end);
}

/* ------------------------------------------------------------------ read */

static int redis_read(void *self, uint64_t from, size_t max_events, size_t max_bytes,
                      uint64_t wait_ms, sl_event_batch *out, uint64_t *next, int *at_end)
{
	redis_src *r = self;
	size_t n0 = out->n, added = 0;
	uint64_t pos = from;
	snapshot s;
	verdict v;
	int rc;

	*at_end = 0; /* a stream is never finished */
	if (max_events == 0)
		return sl_error_set(SL_EINVAL, "a read of at most 0 events");
	if ((rc = snapshot_take(r, from, count_for(r, out, max_events, max_bytes), &s)) != SL_OK)
		return rc;
	if ((rc = check_not_past(r, &s, from)) != SL_OK)
		goto cleanup;
	judge(r, &s, from, &v);
	if (wait_ms > 0 && !v.gap && (!s.entries || s.entries->elements == 0)) {
		snapshot_free(&s);
		if ((rc = wait_for_entry(r, from, wait_ms)) != SL_OK ||
		    (rc = snapshot_take(r, from, count_for(r, out, max_events, max_bytes), &s)) !=
		            SL_OK ||
		    (rc = check_not_past(r, &s, from)) != SL_OK)
			goto cleanup;
		judge(r, &s, from, &v);
	}
	for (size_t i = 0; s.entries && i < s.entries->elements; i++) {
		const redisReply *e = s.entries->element[i];
		stream_id id;
		if (sl_event_batch_full(out, added, max_events, max_bytes))
			break;
		if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
		    e->element[0]->type != REDIS_REPLY_STRING ||
		    e->element[1]->type != REDIS_REPLY_ARRAY) {
			rc = bad_answer(r, "XREAD");
			break;
		}
		if (v.gap && id_parse(&id, e->element[0]->str) && id_cmp(id, v.limit) >= 0)
			break; /* the gap comes first (R5) */
		if ((rc = take_entry(r, e, out)) != SL_OK)
			break;
		added++;
		if (out->events[out->n - 1].pos < pos) {
			sl_event_batch_truncate(out, out->n - 1);
			added--;
			rc = bad_answer(r, "XREAD");
			break;
		}
		pos = out->events[out->n - 1].pos + 1;
	}
	if (rc != SL_OK && added > 0)
		rc = SL_OK; /* the next read, from pos, meets the error again */
	if (rc == SL_OK && v.gap && added == 0) {
		rc = gap_error(r, &v, from, next);
	} else if (rc == SL_OK) {
		*next = pos;
		if (v.count_known)
			remember(r, from, v.count);
		if (v.count_known && v.keeps_count)
			remember(r, pos, v.count + added);
	}
cleanup:
	if (rc != SL_OK)
		sl_event_batch_truncate(out, n0);
	snapshot_free(&s);
	return rc;
}

static int redis_head(void *self, sl_event_source_head *out)
{
	redis_src *r = self;
	char last[SL_REDIS_ID_MAX];
	uint64_t pos = 0;
	snapshot s;
	int rc;

	if ((rc = snapshot_take(r, 0, 0, &s)) != SL_OK)
		return rc;
	id_text(last, sizeof(last), s.last);
	if (s.exists && !id_zero(s.last) && (rc = sl_redis_id_to_pos(&pos, last)) != SL_OK)
		sl_error_wrap("%s: the stream's last id", r->name);
	else if (s.exists && !id_zero(s.last))
		pos++;
	snapshot_free(&s);
	if (rc != SL_OK)
		return rc;
	out->end = pos;
	out->known = 1;
	return SL_OK;
}

/* "POS:C ...": the anchors, the newest first (R4); "" when there are
 * none. Whichever of their positions the mirror stores, a source given
 * this state knows C there. */
static int redis_save_state(void *self, char *out, size_t cap)
{
	redis_src *r = self;
	size_t len = 0;

	if (cap == 0)
		return sl_error_set(SL_ETOOLARGE, "no room for the source's state");
	out[0] = '\0';
	for (size_t i = 0; i < r->n_anchors; i++) {
		int n = snprintf(out + len, cap - len, "%s%" PRIu64 ":%" PRIu64, i ? " " : "",
		                 r->anchors[i].pos, r->anchors[i].count);
		if (n < 0 || (size_t)n >= cap - len) {
			out[0] = '\0';
			return sl_error_set(SL_ETOOLARGE,
			                    "the source's state needs more than %zu bytes", cap);
		}
		len += (size_t)n;
	}
	return SL_OK;
}

static int redis_restore_state(void *self, const char *state)
{
	redis_src *r = self;
	anchor got[ANCHORS];
	const char *p = state;
	size_t n = 0;

	for (;;) {
		const char *colon = strchr(p, ':'),
		           *end = colon ? colon + strcspn(colon, " ") : NULL;
		if (n == ANCHORS || !colon || !decimal(&got[n].pos, p, (size_t)(colon - p), 1) ||
		    !decimal(&got[n].count, colon + 1, (size_t)(end - colon - 1), 1))
			return sl_error_set(
			        SL_ECORRUPT,
			        "redis source state '%.80s' is not \"POS:COUNT ...\" (up "
			        "to %d pairs of decimals)",
			        state, ANCHORS);
		n++;
		if (*end == '\0')
			break;
		p = end + 1;
	}
	while (n > 0) { /* the oldest first, so the newest ends up first */
		n--;
		remember(r, got[n].pos, got[n].count);
	}
	return SL_OK;
}

static void redis_close(void *self)
{
	redis_src *r = self;
	if (!r)
		return;
	drop(r);
	sl_server_url_clear(&r->url);
	sl_free(r->stream);
	for (int i = 0; i < N_FIELDS; i++)
		sl_free(r->field_names[i]);
	sl_free(r->parts);
	sl_free(r->part_lens);
	sl_free(r);
}

static const sl_event_source_ops redis_ops = {
        "redis", redis_read, redis_head, redis_save_state, redis_restore_state, redis_close,
};

void sl_redis_source_options_init(sl_redis_source_options *o)
{
	memset(o, 0, sizeof(*o));
	o->key_field = "key";
	o->op_field = "op";
	o->value_field = "value";
	o->timeout_ms = TIMEOUT_DEFAULT_MS;
}

int sl_redis_source_open(sl_event_source *out, const sl_redis_source_options *o)
{
	sl_server_url_form form = sl_server_url_redis;
	const char *names[N_FIELDS];
	redis_src *r;
	int rc;

	form.what = "redis source url";
	if (!o || !o->stream || !o->stream[0])
		return sl_error_set(SL_EINVAL, "a redis source needs a url and a stream");
	if ((rc = names_of(names, o)) != SL_OK)
		return rc;
	if (!(r = sl_calloc(1, sizeof(*r))))
		return SL_ENOMEM;
	if ((rc = sl_server_url_parse(&r->url, o->url, &form)) != SL_OK)
		goto fail;
	rc = SL_ENOMEM;
	if (!(r->stream = sl_strdup(o->stream)))
		goto fail;
	for (int i = 0; i < N_FIELDS; i++)
		if (names[i] && !(r->field_names[i] = sl_strdup(names[i])))
			goto fail;
	r->fields.key_field = r->field_names[0];
	r->fields.op_field = r->field_names[1];
	r->fields.value_field = r->field_names[2];
	r->fields.version_field = r->field_names[3];
	r->timeout_ms = o->timeout_ms ? o->timeout_ms : TIMEOUT_DEFAULT_MS;
	if ((rc = sl_event_source_set_name(
	             out, strchr(r->url.host, ':') ? "redis:[%s]:%u/%u/%s" : "redis:%s:%u/%u/%s",
	             r->url.host, r->url.port, r->url.db, r->stream)) != SL_OK)
		goto fail;
	snprintf(r->name, sizeof(r->name), "%s", out->name);
	out->ops = &redis_ops;
	out->self = r;
	return SL_OK;
fail:
	redis_close(r);
	return rc;
}
