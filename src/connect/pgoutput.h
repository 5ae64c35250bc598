/* The messages of PostgreSQL's logical replication stream, decoded: the
 * CopyBoth frames of the replication protocol (XLogData 'w', keepalive 'k')
 * and the pgoutput plugin's messages (protocol version 1) inside XLogData.
 *
 * Pure decoding, no I/O: every function reads a byte range and either fills
 * its output or returns SL_ECORRUPT with what was wrong; nothing is
 * allocated. Pointers in the output point into the input, so they live as
 * long as the caller's buffer. Tuples are decoded column by column with
 * sl_pgo_tuple_next, so no column count from the wire sizes an allocation.
 *
 * Integers on the wire are big-endian; LSNs are 64-bit. A tuple column is
 * 'n' (NULL), 'u' (an unchanged TOASTed value, not sent) or 't' (text:
 * Int32 length and that many bytes). Binary columns ('b') are only sent
 * when asked for, which we never do; they are refused.
 */
#ifndef SLUICE_CONNECT_PGOUTPUT_H
#define SLUICE_CONNECT_PGOUTPUT_H

#include <stddef.h>
#include <stdint.h>

/* -------------------------------------------------------- CopyBoth frames */

typedef enum sl_pgo_frame_kind {
	SL_PGO_XLOGDATA = 'w',
	SL_PGO_KEEPALIVE = 'k',
} sl_pgo_frame_kind;

typedef struct sl_pgo_frame {
	sl_pgo_frame_kind kind;
	uint64_t wal_start;  /* XLogData: where its data starts */
	uint64_t wal_end;    /* the server's position */
	int64_t send_time;   /* microseconds since 2000-01-01 */
	int reply_requested; /* keepalive: answer at once */
	const uint8_t *data; /* XLogData: the plugin's message */
	size_t data_len;
} sl_pgo_frame;

int sl_pgo_frame_decode(const uint8_t *p, size_t n, sl_pgo_frame *out);

/* The standby status update we send ('r'): written, flushed and applied
 * positions, our clock, and whether we ask for an answer. 34 bytes. */
#define SL_PGO_STATUS_LEN 34
void sl_pgo_status_encode(uint8_t out[SL_PGO_STATUS_LEN], uint64_t lsn, int64_t now_us,
                          int reply_requested);

/* -------------------------------------------------------- pgoutput v1 */

typedef enum sl_pgo_kind {
	SL_PGO_BEGIN = 'B',
	SL_PGO_COMMIT = 'C',
	SL_PGO_RELATION = 'R',
	SL_PGO_INSERT = 'I',
	SL_PGO_UPDATE = 'U',
	SL_PGO_DELETE = 'D',
	SL_PGO_TRUNCATE = 'T',
	SL_PGO_OTHER = 0, /* origin, type, logical message: nothing for us */
} sl_pgo_kind;

/* A tuple's columns, read with sl_pgo_tuple_next. */
typedef struct sl_pgo_tuple {
	const uint8_t *p; /* the first column not yet read */
	const uint8_t *end;
	uint16_t n_columns;
	uint16_t next; /* index of the next column */
} sl_pgo_tuple;

typedef enum sl_pgo_value_kind {
	SL_PGO_NULL = 'n',
	SL_PGO_UNCHANGED = 'u',
	SL_PGO_TEXT = 't',
} sl_pgo_value_kind;

typedef struct sl_pgo_value {
	sl_pgo_value_kind kind;
	const char *text; /* SL_PGO_TEXT: not NUL-terminated */
	size_t len;
} sl_pgo_value;

/* A relation's columns, read with sl_pgo_column_next. */
typedef struct sl_pgo_columns {
	const uint8_t *p;
	const uint8_t *end;
	uint16_t n_columns;
	uint16_t next;
} sl_pgo_columns;

typedef struct sl_pgo_column {
	int is_key;       /* part of the replica identity */
	const char *name; /* NUL-terminated, in the input */
	uint32_t type_oid;
} sl_pgo_column;

typedef struct sl_pgo_msg {
	sl_pgo_kind kind;
	uint32_t xid;             /* BEGIN */
	uint64_t lsn;             /* BEGIN: the commit's LSN; COMMIT: the commit's LSN */
	uint64_t end_lsn;         /* COMMIT: the end of the commit record */
	int64_t commit_time;      /* BEGIN, COMMIT: microseconds since 2000-01-01 */
	uint32_t relid;           /* RELATION, INSERT, UPDATE, DELETE */
	const char *nspname;      /* RELATION (NUL-terminated, in the input) */
	const char *relname;      /* RELATION */
	sl_pgo_columns columns;   /* RELATION */
	int has_old;              /* UPDATE: an old tuple ('K' or 'O') came too */
	sl_pgo_tuple old_tuple;   /* UPDATE (has_old), DELETE */
	sl_pgo_tuple new_tuple;   /* INSERT, UPDATE */
	uint32_t n_truncated;     /* TRUNCATE: how many relation ids */
	const uint8_t *truncated; /* TRUNCATE: n_truncated big-endian uint32s */
} sl_pgo_msg;

/* Decodes one pgoutput message. The tuples' columns are checked when read;
 * everything else here. */
int sl_pgo_decode(const uint8_t *p, size_t n, sl_pgo_msg *out);

/* The next column: SL_OK and *out, SL_ENOTFOUND when all were read, or
 * SL_ECORRUPT. */
int sl_pgo_tuple_next(sl_pgo_tuple *t, sl_pgo_value *out);
int sl_pgo_column_next(sl_pgo_columns *c, sl_pgo_column *out);

/* The i-th truncated relation id (i < n_truncated). */
uint32_t sl_pgo_truncated_relid(const sl_pgo_msg *m, uint32_t i);

/* "X/Y" as PostgreSQL writes LSNs; cap at least 18. */
void sl_pgo_lsn_format(char *out, size_t cap, uint64_t lsn);
/* Parses "X/Y"; SL_EINVAL when it is not one. */
int sl_pgo_lsn_parse(const char *text, uint64_t *out);

#endif
