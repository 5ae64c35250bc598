/*
 * DAG namespaces (store layer): many writers, signed entries, a
 * deterministic merged state (docs/protocol.md, "DAG entries").
 *
 * An entry names its namespace, its parents (the entries it was written on
 * top of), its height (max parent height + 1), its author (an Ed25519
 * key), a display time, and its writes: set a key to a value digest,
 * delete a key, or (for an admin) set a key's role. It is signed by its
 * author; its id is the SHA-256 of its whole encoding. The root entry,
 * with no parent, defines the namespace: its id is the namespace id and
 * its author the first admin.
 *
 * The state is a merge every peer computes alike: for each key, and for
 * each role, the write of the entry greatest in (height, id) wins, over
 * every entry held. Who may write is judged at an entry's parents: the
 * roles as merged from the settings entries among its ancestors. A store
 * holds only entries it verified, and always every ancestor of each.
 */
#ifndef SLUICE_DAG_H
#define SLUICE_DAG_H

#include "sluice/store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SL_DAG_ENTRY_VERSION 1
#define SL_DAG_MAX_PARENTS   16
#define SL_DAG_MAX_WRITES    4096
#define SL_DAG_ENTRY_MAX     ((size_t)256 << 10) /* bytes of one encoded entry */

typedef enum sl_dag_role {
	SL_DAG_NONE = 0,  /* no access */
	SL_DAG_READ = 1,  /* may sync the namespace's entries */
	SL_DAG_WRITE = 2, /* may also write entries */
	SL_DAG_ADMIN = 3  /* may also set roles */
} sl_dag_role;

const char *sl_dag_role_name(sl_dag_role role);            /* "none", "read", ... */
int sl_dag_role_parse(sl_dag_role *out, const char *name); /* SL_EINVAL if none */

typedef enum sl_dag_write_kind {
	SL_DAG_SET = 1,    /* key -> value (digest and size) */
	SL_DAG_DELETE = 2, /* key removed */
	SL_DAG_ROLE = 3    /* a key's role: admins only */
} sl_dag_write_kind;

typedef struct sl_dag_write {
	sl_dag_write_kind kind;
	const char *key; /* SET, DELETE; borrowed */
	size_t key_len;
	uint64_t value_len;            /* SET */
	sl_digest digest;              /* SET */
	uint8_t pk[SL_ED25519_PK_LEN]; /* ROLE */
	sl_dag_role role;              /* ROLE */
} sl_dag_write;

/* A decoded entry; pointers borrow from the encoding. */
typedef struct sl_dag_entry {
	sl_digest id; /* SHA-256 of the encoding */
	sl_digest ns; /* the namespace id; in the root entry, a random salt, so
	                 that every namespace created has an id of its own */
	uint64_t height;
	size_t n_parents;
	sl_digest parents[SL_DAG_MAX_PARENTS]; /* sorted, distinct */
	uint8_t author[SL_ED25519_PK_LEN];
	uint64_t time_ms; /* for display only */
	size_t n_writes;
	sl_dag_write *writes; /* owned array */
	uint8_t signature[SL_ED25519_SIG_LEN];
} sl_dag_entry;

/* Encode, sign with sk (whose public half is e->author) and set e->id.
 * Checks the form (SL_EINVAL): parents sorted and distinct, 1..16 (none
 * only for the root, which alone has height 0), a non-zero ns but in the
 * root, writes distinct by key or by role key, keys valid, at most
 * SL_DAG_ENTRY_MAX bytes (SL_ETOOLARGE). */
int sl_dag_entry_sign(sl_dag_entry *e, const uint8_t sk[SL_ED25519_SK_LEN], sl_buf *out);
/* Decode exactly one entry and check its form and signature (not its
 * place in a namespace: parents, height, authorization). SL_ECORRUPT or
 * SL_EVERIFY naming what is wrong; SL_ETOOLARGE past SL_DAG_ENTRY_MAX. */
int sl_dag_entry_decode(sl_dag_entry *out, const uint8_t *data, size_t len);
void sl_dag_entry_free(sl_dag_entry *e); /* the writes array; NULL ok */

/* ---------------------------------------------------------------- store */

/* Create a dag namespace: a root entry signed by sk makes its author the
 * first admin. *ns_id (may be NULL) receives the namespace id. */
int sl_dag_create(sl_store *s, const char *name, const uint8_t sk[SL_ED25519_SK_LEN],
                  sl_digest *ns_id);

/* Join a namespace whose root entry is `root` (verified, and its id
 * becomes the namespace id): for a store that syncs it from peers. */
int sl_dag_create_from_root(sl_store *s, const char *name, const uint8_t *root, size_t len);

/* One local write: an entry on top of the current tips (the first 16 in
 * (height, id) order: newer tips beyond wait for the next write), signed
 * by sk.
 * values[i] is the value of writes[i] when it is a SET (its digest and
 * size are computed here). *id (may be NULL) receives the entry id. The
 * author must be allowed to write (SL_EAUTH otherwise). */
int sl_dag_write_entry(sl_store *s, const char *ns, const uint8_t sk[SL_ED25519_SK_LEN],
                       const sl_dag_write *writes, const sl_bytes *values, size_t n, sl_digest *id);

/* What became of entries offered to sl_dag_insert. */
typedef struct sl_dag_insert_report {
	size_t stored;   /* new and verified */
	size_t known;    /* held already */
	size_t refused;  /* failed a check, or descend from one that did */
	size_t orphaned; /* of refused: a parent neither held nor earlier in
	                    the call; such an entry may come again once it is */
	sl_digest first_refused;
	char reason[256]; /* why the first one was refused */
} sl_dag_insert_report;

/* Verify and store entries from another node, in one transaction: each
 * is checked (form, signature, namespace, parents held or earlier in this
 * call, height, its author's right to write, the values of its SETs:
 * among `values` or held already) before it is stored; a refused entry
 * and every entry descending from it are left out, the others stored.
 * Returns SL_OK with the report (check report->refused), or an error of
 * the store. */
int sl_dag_insert(sl_store *s, const char *ns, const sl_bytes *entries, size_t n,
                  const sl_bytes *values, size_t n_values, sl_dag_insert_report *report);

/* The signatures of entries, checked ahead of storing them: decoding and
 * Ed25519 on up to one thread per processor. The set holds the ids of the
 * entries that passed; an id is the hash of the whole encoding, so it
 * vouches for exactly those bytes. A receiver can check the next frame's
 * signatures while it stores the current one. */
typedef struct sl_dag_verified sl_dag_verified;
int sl_dag_verify_signatures(const sl_bytes *entries, size_t n, sl_dag_verified **out);
void sl_dag_verified_free(sl_dag_verified *v); /* NULL ok */

/* sl_dag_insert, for entries the node `from` pushed here (NULL: unknown):
 * what it sent is not owed back to it. When `from` is a peer of ns whose
 * outbox was empty, it stays empty, in the same transaction. `verified`
 * (NULL: checked here) vouches for signatures: an entry whose id is not
 * in it has its signature checked as it is offered. */
int sl_dag_insert_from(sl_store *s, const char *ns, const uint8_t from[SL_ED25519_PK_LEN],
                       const sl_dag_verified *verified, const sl_bytes *entries, size_t n,
                       const sl_bytes *values, size_t n_values, sl_dag_insert_report *report);

typedef struct sl_dag_info {
	sl_digest ns_id;
	uint64_t entries;
	uint64_t keys; /* live keys */
	uint64_t max_height;
	size_t n_tips;                      /* all of them */
	sl_digest tips[SL_DAG_MAX_PARENTS]; /* the first ones, in (height, id) order */
} sl_dag_info;

int sl_dag_info_get(sl_store *s, const char *ns, sl_dag_info *out);

/* The ids of the tips in (height, id) order: the first cap into ids, and
 * their number (which may be more) into *n; *entries: entries held. */
int sl_dag_tip_ids(sl_store *s, const char *ns, sl_digest *ids, size_t cap, size_t *n,
                   uint64_t *entries);

/* The encoding of the namespace's root entry. */
int sl_dag_root_entry(sl_store *s, const char *ns, sl_buf *out);
/* The height of each entry of ids held here, UINT64_MAX for one that is
 * not: for a syncing client, which orders what it pushes parents first
 * and learns which fetched entries were stored. */
int sl_dag_heights(sl_store *s, const char *ns, const uint8_t (*ids)[SL_DIGEST_LEN], size_t n,
                   uint64_t *heights);

/* The name here of the dag namespace whose id is ns_id (SL_ENOTFOUND if
 * none; the first by name if two hold it). */
int sl_dag_find(sl_store *s, const sl_digest *ns_id, char name[SL_NS_NAME_MAX + 1]);

/* Every entry held, in (height, id) order: cb gets the decoded entry and
 * its encoding; a non-zero return stops and is returned. */
typedef int (*sl_dag_entry_fn)(void *ctx, const sl_dag_entry *e, const uint8_t *encoding,
                               size_t len);
int sl_dag_log(sl_store *s, const char *ns, sl_dag_entry_fn cb, void *ctx);
/* The tips (entries no other entry names as a parent), in (height, id)
 * order. */
int sl_dag_tips(sl_store *s, const char *ns, sl_dag_entry_fn cb, void *ctx);

/* The role a key holds in the namespace's current settings. */
int sl_dag_role_of(sl_store *s, const char *ns, const uint8_t pk[SL_ED25519_PK_LEN],
                   sl_dag_role *out);

/* ----------------------------------------------------- reconciliation */

/* The reconciliation items of a dag namespace, one per entry held: the
 * entry's height as the timestamp, its id as the id. A view is not tied
 * to a store handle: refresh reads the entries stored since it last
 * looked (a namespace only grows), so a server keeps one per namespace.
 * Not thread-safe: callers serialize refresh and reads. */
typedef struct sl_dag_items sl_dag_items;

int sl_dag_items_new(sl_dag_items **out);
void sl_dag_items_free(sl_dag_items *v); /* NULL ok */
int sl_dag_items_refresh(sl_dag_items *v, sl_store *s, const char *ns);
uint64_t sl_dag_items_count(const sl_dag_items *v);
/* Valid until the next refresh or free. */
sl_item_set sl_dag_items_set(sl_dag_items *v);

/* --------------------------------------------------------- serving peers */

/* Where entries handed to a peer go: each entry after the values its
 * writes set (each value once per call), and the ids asked for that are
 * not held. A non-zero return stops the call and is returned. */
typedef struct sl_dag_sink {
	int (*value)(void *ctx, const sl_digest *digest, const uint8_t *data, size_t len);
	int (*entry)(void *ctx, const sl_dag_entry *e, const uint8_t *encoding, size_t len);
	int (*missing)(void *ctx, const uint8_t id[SL_DIGEST_LEN]);
	void *ctx;
} sl_dag_sink;

typedef struct sl_dag_served {
	size_t entries; /* handed to the sink */
	size_t missing; /* ids not held (sl_dag_serve_ids) */
	int more;       /* the budget ran out before the last entry */
} sl_dag_served;

/* The held entries among ids, in (height, id) order, until `budget` bytes
 * of entries and values were handed out (at least one entry); repeats in
 * ids count once. */
int sl_dag_serve_ids(sl_store *s, const char *ns, const uint8_t (*ids)[SL_DIGEST_LEN], size_t n,
                     size_t budget, const sl_dag_sink *sink, sl_dag_served *out);
/* Every entry after (height, id), in (height, id) order, likewise. */
int sl_dag_serve_after(sl_store *s, const char *ns, uint64_t height, const sl_digest *id,
                       size_t budget, const sl_dag_sink *sink, sl_dag_served *out);
/* Every entry stored from seq from_seq on, in the order they were stored
 * (parents first), likewise: a peer's outbox. */
int sl_dag_serve_seq(sl_store *s, const char *ns, uint64_t from_seq, size_t budget,
                     const sl_dag_sink *sink, sl_dag_served *out);

/* ------------------------------------------------------------------ peers */

#define SL_DAG_ADDR_MAX 256 /* bytes of a peer address, with its NUL */

/* A node this one syncs a dag namespace with, and how that goes. The
 * entries stored here from seq pushed_seq on are the peer's outbox: owed
 * to it, in the order they were stored, until it has taken them. */
typedef struct sl_dag_peer {
	char ns[SL_NS_NAME_MAX + 1];
	char addr[SL_DAG_ADDR_MAX]; /* host:port */
	uint8_t node[SL_ED25519_PK_LEN];
	uint64_t pushed_seq;
	uint64_t backlog; /* entries owed: the namespace's size - pushed_seq */
	uint64_t last_ok_ms, last_try_ms, next_try_ms; /* Unix ms; 0: never */
	uint32_t failures;                             /* since the last success */
	char last_error[256];
} sl_dag_peer;

/* Add (or, for an address already there, re-key) a peer of ns. Its outbox
 * starts empty: what is held now is for reconciliation to compare. */
int sl_dag_peer_add(sl_store *s, const char *ns, const char *addr,
                    const uint8_t node[SL_ED25519_PK_LEN]);
int sl_dag_peer_remove(sl_store *s, const char *ns, const char *addr); /* SL_ENOTFOUND */
/* The peers of ns (NULL: of every namespace), by namespace then address;
 * *out from sl_malloc. */
int sl_dag_peer_list(sl_store *s, const char *ns, sl_dag_peer **out, size_t *n);
/* The outcome of a sync with a peer: its outbox moves on to pushed_upto
 * (never back, never past what is held) either way; ok clears its
 * failures, else one more is counted with its error. next_try_ms is
 * when to try again. */
int sl_dag_peer_record(sl_store *s, const char *ns, const char *addr, int ok, uint64_t pushed_upto,
                       const char *error, uint64_t now_ms, uint64_t next_try_ms);

/* -------------------------------------------------------- access requests */

typedef enum sl_dag_request_state {
	SL_DAG_REQUEST_PENDING = 0,
	SL_DAG_REQUEST_APPROVED = 1,
	SL_DAG_REQUEST_DENIED = 2
} sl_dag_request_state;

/* A node's request for a role in a namespace held here. */
typedef struct sl_dag_request {
	uint64_t id;
	char ns[SL_NS_NAME_MAX + 1];
	uint8_t node[SL_ED25519_PK_LEN];
	sl_dag_role role;           /* read or write */
	char addr[SL_DAG_ADDR_MAX]; /* where the node serves, "" if it did not say */
	uint64_t time_ms;
	sl_dag_request_state state;
} sl_dag_request;

/* Record a node's request (one per node and namespace: asking again
 * updates a pending request and leaves a decided one as it was); *out
 * gets it as stored. */
int sl_dag_request_submit(sl_store *s, const char *ns, const uint8_t node[SL_ED25519_PK_LEN],
                          sl_dag_role role, const char *addr, uint64_t now_ms, sl_dag_request *out);
int sl_dag_request_list(sl_store *s, sl_dag_request **out, size_t *n); /* *out: sl_malloc */
int sl_dag_requests_pending(sl_store *s, const char *ns, uint64_t *out);
int sl_dag_request_get(sl_store *s, uint64_t id, sl_dag_request *out);
/* Approve: the request is marked approved, then an entry signed by sk
 * (an admin of the namespace: SL_EAUTH otherwise, nothing changed) gives
 * the node the role it asked for. Approving an approved request writes
 * the role again (after a crash between the two). */
int sl_dag_request_approve(sl_store *s, uint64_t id, const uint8_t sk[SL_ED25519_SK_LEN]);
int sl_dag_request_deny(sl_store *s, uint64_t id); /* SL_ECONFLICT once approved */

/* Recompute every entry's id, signature, height and authorization and the
 * whole state from the entries, and compare with what is stored. */
int sl_dag_verify(sl_store *s, const char *ns, sl_verify_report *out);

#ifdef __cplusplus
}
#endif
#endif
