/*
 * Sync of dag namespaces between nodes (docs/protocol.md, "DAG sync"), in
 * the sync layer.
 *
 * A server answers a few requests about a namespace (its tips, a
 * reconciliation message over the items (height, entry id), entries by
 * id, a bootstrap page after a cursor, entries pushed to it, a request
 * for access); the answers are functions of the store here, so any
 * transport can carry them. A client syncs a namespace with one peer over
 * an sl_dag_transport: HTTP with signed requests (sl_dag_http_*), or a
 * function call in tests and benchmarks. Every entry a client takes is
 * verified before it is stored (sl_dag_insert), whoever sent it.
 */
#ifndef SLUICE_DAG_SYNC_H
#define SLUICE_DAG_SYNC_H

#include "sluice/dag.h"
#include "sluice/net.h"
#include "sluice/sync.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SL_DAG_TIPS_MAX     1024               /* tips in a tips answer */
#define SL_DAG_FRAME_BUDGET ((size_t)16 << 20) /* bytes of entries and values a page holds */
#define SL_DAG_MSG_MAX      ((size_t)1 << 20)  /* a reconciliation message */
#define SL_DAG_PUSH_MAX     ((size_t)64 << 20) /* a pushed frame */
#define SL_DAG_PENDING_MAX  1000               /* access requests pending per namespace */

/* ---------------------------------------------------------------- answers */

/* {"id", "entries", "tips": [id], "more": bool}: more when there are more
 * than SL_DAG_TIPS_MAX tips (the first ones are listed); id is ns_id, the
 * namespace's (the caller found ns by it). */
int sl_dag_tips_answer(sl_store *s, const char *ns, const sl_digest *ns_id, sl_buf *out);
/* The responder's answer to a negentropy message over the namespace's
 * items; `items` is refreshed first (one view per namespace, reused). */
int sl_dag_reconcile_answer(sl_dag_items *items, sl_store *s, const char *ns, const uint8_t *msg,
                            size_t len, sl_buf *out);
/* An entries frame answering an ids request (the items request form,
 * flags 0): the held entries in (height, id) order with their values
 * until budget, the ids not held listed as missing, the flag "more" when
 * held entries were left out. */
int sl_dag_entries_answer(sl_store *s, const char *ns, const uint8_t *request, size_t len,
                          size_t budget, sl_buf *out);
/* The entries frame of the held entries among ids, in (height, id) order,
 * until budget: in the answer form, the ids not held are listed and the
 * flag "more" set when held entries were left out; in the push form
 * (answer_form 0) the flags are 0 and an id not held is SL_ENOTFOUND.
 * on_entry (may be NULL) sees each entry put in; *served counts them. */
int sl_dag_entries_frame(sl_store *s, const char *ns, const uint8_t (*ids)[SL_DIGEST_LEN], size_t n,
                         size_t budget, int answer_form, sl_dag_entry_fn on_entry, void *ctx,
                         sl_buf *out, sl_dag_served *served);
/* A push-form frame of the entries stored from seq from_seq on, in the
 * order they were stored, until budget. */
int sl_dag_seq_frame(sl_store *s, const char *ns, uint64_t from_seq, size_t budget, sl_buf *out,
                     sl_dag_served *served);
/* A bootstrap page: entries after the request's cursor, if the asker's
 * items up to the cursor are exactly this node's (else SL_ECONFLICT: the
 * asker must reconcile instead). */
int sl_dag_bootstrap_answer(sl_dag_items *items, sl_store *s, const char *ns,
                            const uint8_t *request, size_t len, size_t budget, sl_buf *out);
/* Entries pushed by the node `from`: decoded and offered to
 * sl_dag_insert_from. */
int sl_dag_push_answer(sl_store *s, const char *ns, const uint8_t from[SL_ED25519_PK_LEN],
                       const uint8_t *frame, size_t len, sl_dag_insert_report *report);

/* The bootstrap request: version 1, the cursor (height, id), and the count
 * and fingerprint of the asker's items up to and including it. */
#define SL_DAG_BOOTSTRAP_LEN (1 + 8 + 32 + 8 + SL_FINGERPRINT_LEN)
int sl_dag_bootstrap_request(uint8_t out[SL_DAG_BOOTSTRAP_LEN], const sl_item *cursor,
                             uint64_t count, const uint8_t fingerprint[SL_FINGERPRINT_LEN]);

/* -------------------------------------------------------------- transport */

/* One request to a peer about one namespace: endpoint is "tips",
 * "reconcile", "entries", "bootstrap", "push" or "join". Returns SL_OK
 * when an answer came, whatever its status (in *status, HTTP's codes),
 * with the body in out; an SL_E* code when none did. */
typedef struct sl_dag_transport {
	int (*call)(void *ctx, const char *endpoint, const uint8_t *body, size_t len, long *status,
	            sl_buf *out);
	void *ctx;
} sl_dag_transport;

/* HTTP with requests signed by `key`, to the node at addr (host:port)
 * whose key is server_key, about the namespace ns_id. */
typedef struct sl_dag_http sl_dag_http;
int sl_dag_http_new(sl_dag_http **out, const char *addr,
                    const uint8_t server_key[SL_ED25519_PK_LEN], const sl_digest *ns_id,
                    const sl_node_key *key, const sl_http_client_options *opts);
void sl_dag_http_free(sl_dag_http *h); /* NULL ok */
sl_dag_transport sl_dag_http_transport(sl_dag_http *h);

/* ------------------------------------------------------------------ client */

typedef struct sl_dag_sync_report {
	int equal;            /* both sides hold the same entries at the end */
	int bootstrapped;     /* pages were pulled after a cursor */
	uint64_t pulled;      /* entries stored here */
	uint64_t pushed;      /* entries the peer stored */
	uint64_t refused;     /* entries either side refused */
	uint64_t round_trips; /* requests made */
	uint64_t bytes_sent, bytes_received;
	uint64_t upto;   /* entries [0, upto) of this store the peer now holds */
	long status;     /* of the last refused request, 0 if none */
	char error[256]; /* why the sync did not end equal, if it did not */
} sl_dag_sync_report;

/* Sync ns with one peer both ways: if the peer's tips are this node's,
 * done; if this node's entries are a prefix of the peer's, pull pages
 * after its last one; otherwise reconcile, fetch what is missing here and
 * push what the peer lacks; then compare the tips again (up to three
 * rounds). Equal tips end it. Answers are not signed: nothing unverified
 * is ever stored, but a forged answer can make a sync report equal when
 * it is not (docs/protocol.md, "DAG sync").
 * Returns SL_OK when the exchange ran (check report->equal), SL_EAUTH
 * when the peer refused this node (401/403: not approved yet, or the
 * request's signature or clock), another SL_E* code when the peer could
 * not be reached or answered out of form. */
int sl_dag_sync(sl_store *s, const char *ns, const sl_dag_transport *peer,
                sl_dag_sync_report *report);

/* Push the entries stored from seq from_seq on (a peer's outbox), in
 * frames, in the order they were stored. *upto: the seq up to which the
 * peer took them (from_seq if none). SL_EVERIFY when the peer refused
 * some (an entry whose parents it lacks: reconciliation settles that). */
int sl_dag_push_outbox(sl_store *s, const char *ns, const sl_dag_transport *peer, uint64_t from_seq,
                       uint64_t *upto, sl_dag_sync_report *report);

/* ---------------------------------------------------------------- tickets */

/* sluice:?ns=<id hex>&name=<name>&node=<node key hex>&pr=http:<host:port> */
#define SL_DAG_TICKET_MAX 512

typedef struct sl_dag_ticket {
	sl_digest ns_id;
	char name[SL_NS_NAME_MAX + 1];
	uint8_t node[SL_ED25519_PK_LEN];
	char addr[SL_DAG_ADDR_MAX];
} sl_dag_ticket;

int sl_dag_ticket_format(const sl_dag_ticket *t, char *out, size_t cap);
/* Strict: exactly the form format writes; SL_EINVAL naming what is not. */
int sl_dag_ticket_parse(sl_dag_ticket *out, const char *text);

/* Ask the node of a ticket for a role (read or write) in its namespace,
 * telling it where this node serves (addr, may be NULL), by a signed
 * join request; out gets the answer: the request's id and state, and
 * the namespace's root entry (checked to be the ticket's namespace). */
typedef struct sl_dag_join_answer {
	uint64_t request;
	char state[16]; /* "pending", "approved", "denied" */
	sl_dag_role role;
	sl_buf root; /* the root entry; the caller frees it */
} sl_dag_join_answer;

int sl_dag_join(const sl_dag_ticket *t, const sl_node_key *key, sl_dag_role role, const char *addr,
                sl_dag_join_answer *out);

/* ------------------------------------------------------------------ peers */

#define SL_DAG_INTERVAL_MS    60000  /* a full sync with each peer this often */
#define SL_DAG_MAX_BACKOFF_MS 300000 /* the longest wait after failures */

/* Sync with one peer of the dag_peers table now, recording the outcome on
 * its row (dag_peer_sync.c). */
int sl_dag_sync_peer(sl_store *s, const sl_dag_peer *p, const sl_node_key *key,
                     sl_dag_sync_report *report);

/* The background sync of every dag namespace with its peers: outboxes
 * pushed soon after entries are stored, a full sync every interval, and
 * full-jitter backoff after failures, never dropping what is owed. */
typedef struct sl_dag_syncer_options {
	const char *store_dir;   /* required; the syncer opens its own handle */
	const sl_node_key *key;  /* required: signs requests */
	uint64_t interval_ms;    /* default SL_DAG_INTERVAL_MS */
	uint64_t poll_ms;        /* how often to look for owed entries, default 200 */
	uint64_t max_backoff_ms; /* default SL_DAG_MAX_BACKOFF_MS */
	sl_metrics *metrics;     /* may be NULL */
} sl_dag_syncer_options;

void sl_dag_syncer_options_init(sl_dag_syncer_options *o);
typedef struct sl_dag_syncer sl_dag_syncer;
int sl_dag_syncer_start(sl_dag_syncer **out, const sl_dag_syncer_options *o);
void sl_dag_syncer_stop(sl_dag_syncer *y); /* waits for a sync in flight; NULL ok */

#ifdef __cplusplus
}
#endif
#endif
