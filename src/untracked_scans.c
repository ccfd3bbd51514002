/*
 * untracked_scans.c
 *		Writing to invicti_listed_scans the running scans a list round shows
 *		that no row of invicti_scans tracks: what the view
 *		invicti_untracked_scans shows (a scan the former primary started for
 *		a launch this server never received, one started by another client
 *		of the token, one whose row was deleted).
 *
 * A list round (job_list.c) notes each such scan; at the end of the round
 * the notes are written in one transaction.  The worker remembers what it
 * wrote (scan id and a hash of the status), so a scan listed again with
 * the same status costs nothing: writes happen when a scan is first seen
 * or its status changes.  The memory is bounded (UNTRACKED_MAX scans; past
 * it nothing more is noted until the worker restarts, said once at LOG).
 *
 * Rules: nothing here decides whether a scan is tracked (the view does,
 * against the table, at the time it is read); a note that cannot be
 * written is dropped, never retried in a loop, and never affects a poll.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "catalog_store.h"
#include "store_transaction.h"
#include "untracked_scans.h"

#define UNTRACKED_MAX 10000

typedef struct Written
{
	pg_uuid_t	scan_id;		/* hash key */
	uint32		status_hash;
} Written;

typedef struct Note
{
	pg_uuid_t	scan_id;
	char	   *target_id;		/* a valid uuid's text, or NULL */
	char	   *profile_id;
	char	   *status;			/* NULL: not started */
	Jsonb	   *raw;
} Note;

static MemoryContext notes_cxt = NULL;	/* what was written: kept */
static MemoryContext round_cxt = NULL;	/* this round's notes */
static HTAB *written = NULL;
static List *notes = NIL;
static bool full_said = false;

static uint32
status_hash(const char *status)
{
	return status ? hash_bytes((const unsigned char *) status, strlen(status)) : 0;
}

static char *
valid_uuid_text(const char *s)
{
	pg_uuid_t	u;

	if (s == NULL || !api_parse_uuid(s, strlen(s), &u))
		return NULL;
	return pstrdup(s);
}

void
untracked_scans_note(const pg_uuid_t *scan_id, const ApiScanState *state, JsonbValue *item)
{
	Written    *w;
	MemoryContext old;
	Note	   *n;

	if (notes_cxt == NULL)
	{
		notes_cxt = AllocSetContextCreate(TopMemoryContext, "invicti_scan untracked scans",
										  ALLOCSET_DEFAULT_SIZES);
		round_cxt = AllocSetContextCreate(notes_cxt, "invicti_scan untracked scans of a round",
										  ALLOCSET_SMALL_SIZES);
	}
	if (written == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(pg_uuid_t);
		ctl.entrysize = sizeof(Written);
		ctl.hcxt = notes_cxt;
		written = hash_create("invicti_scan untracked scans", 64, &ctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	w = hash_search(written, scan_id, HASH_FIND, NULL);
	if (w != NULL && w->status_hash == status_hash(state->status))
		return;
	if (w == NULL && hash_get_num_entries(written) >= UNTRACKED_MAX)
	{
		if (!full_said)
			ereport(LOG,
					(errmsg("invicti_scan worker: more than %d scans listed that no row tracks; further ones are not noted in invicti_listed_scans",
							UNTRACKED_MAX)));
		full_said = true;
		return;
	}
	old = MemoryContextSwitchTo(round_cxt);
	n = palloc0(sizeof(Note));
	n->scan_id = *scan_id;
	n->target_id = valid_uuid_text(state->target_id);
	n->profile_id = valid_uuid_text(state->profile_id);
	n->status = state->status ? pstrdup(state->status) : NULL;
	n->raw = JsonbValueToJsonb(item);
	notes = lappend(notes, n);
	MemoryContextSwitchTo(old);
}

static void
write_notes(void *arg pg_attribute_unused())
{
	ListCell   *lc;
	Oid			types[5] = {UUIDOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID};

	foreach(lc, notes)
	{
		Note	   *n = lfirst(lc);
		Datum		v[5];
		char		nulls[6] = "     ";

		v[0] = UUIDPGetDatum(&n->scan_id);
		v[1] = catalog_store_text_or_null(n->target_id, &nulls[1]);
		v[2] = catalog_store_text_or_null(n->profile_id, &nulls[2]);
		v[3] = catalog_store_text_or_null(n->status, &nulls[3]);
		v[4] = JsonbPGetDatum(n->raw);
		catalog_store_exec("INSERT INTO @S.invicti_listed_scans AS l "
						   "  (scan_id, target_id, profile_id, status, raw) "
						   "VALUES ($1, $2::pg_catalog.uuid, $3::pg_catalog.uuid, $4, $5) "
						   "ON CONFLICT (scan_id) DO UPDATE SET status = excluded.status, "
						   "  raw = excluded.raw, status_seen_at = pg_catalog.now() "
						   "WHERE l.status IS DISTINCT FROM excluded.status",
						   5, types, v, nulls);
	}
}

void
untracked_scans_flush(void)
{
	ListCell   *lc;

	if (notes == NIL || IsTransactionState())
		return;					/* inside a transaction: at the next round */
	if (store_run("noting scans no row tracks", false, write_notes, NULL) == STORE_READY)
	{
		foreach(lc, notes)
		{
			Note	   *n = lfirst(lc);
			Written    *w = hash_search(written, &n->scan_id, HASH_ENTER, NULL);

			w->status_hash = status_hash(n->status);
		}
	}
	/* written or not, the notes go: the next round notes them again */
	notes = NIL;
	MemoryContextReset(round_cxt);
}

/* The table may be new (the extension was created again): write afresh. */
void
untracked_scans_forget(void)
{
	if (notes_cxt == NULL)
		return;
	notes = NIL;
	written = NULL;
	full_said = false;
	MemoryContextReset(notes_cxt);
	round_cxt = AllocSetContextCreate(notes_cxt, "invicti_scan untracked scans of a round",
									  ALLOCSET_SMALL_SIZES);
}
