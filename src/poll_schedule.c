/*
 * poll_schedule.c
 *		Which running scan to refresh next, kept in the worker's memory.
 *
 * Why memory and not a column: a poll that finds nothing new must write
 * nothing.  Storing "next poll at" in the row would rewrite every running
 * scan's tuple (and an index entry) every poll_interval, bloating the table
 * for scans that run for days.  The row is written only when the API says
 * something new; the timetable lives here, and after a restart every running
 * scan is simply due at once.
 *
 * Two ways to refresh a scan: a list round (job_list.c: the running scans,
 * 100 to a page) or a request of its own (job_poll.c).  A scan is on one
 * of two heaps accordingly.  It is refreshed by its own request when list
 * rounds are off, when it was just launched or aborted (one request, not a
 * round), when a refresh was asked for, when its last refresh failed, and
 * when a round ended without showing it; the next good answer puts it back
 * on the round heap.  A round that shows a scan refreshes it whether or not
 * it was due yet, so the scans converge on one round per poll_interval.
 *
 * Each scan also remembers a hash of the answer its row holds, so that a
 * refresh that hears the same bytes again needs no transaction; the hash is
 * forgotten whenever the row may hold something else (an error recorded, the
 * table changed behind the worker).
 *
 * A hash table finds a scan by row id, another by scan id (for the lists);
 * pairing heaps (PostgreSQL's lib/pairingheap) hand out the earliest due
 * one.  A scan whose refresh is in flight is on no heap.  Everything lives
 * in one memory context that is reset as a whole.  Nothing here does I/O.
 */
#include "postgres.h"

#include "lib/pairingheap.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "poll_schedule.h"
#include "retry_policy.h"
#include "settings.h"

typedef struct PollEntry
{
	int64		id;				/* hash key: the row id */
	pg_uuid_t	scan_id;
	TimestampTz due;
	int			failures;		/* consecutive failed refreshes */
	uint32		seen;			/* sync_generation when last confirmed */
	uint32		round_covered;	/* the last list round meant to show it */
	uint32		round_seen;		/* the last list round that showed it */
	uint64		answer;			/* hash of the answer in the row; 0 = unknown */
	TimestampTz refresh_sent_at;	/* the last request a refresh asked for */
	bool		refresh;		/* a refresh was asked for and not sent yet */
	bool		single;			/* refreshed by a request of its own */
	pairingheap *heap;			/* the heap it is on; NULL: in flight */
	pairingheap_node node;
} PollEntry;

/* Requests that refreshes ask for: at most one per scan this often. */
#define REFRESH_GAP_MS 5000

/* scan id -> row id, for list rounds */
typedef struct ScanIdEntry
{
	pg_uuid_t	scan_id;		/* hash key */
	int64		id;
} ScanIdEntry;

static MemoryContext schedule_cxt = NULL;
static HTAB *entries = NULL;
static HTAB *by_scan_id = NULL;
static pairingheap *single_heap = NULL;
static pairingheap *round_heap = NULL;
static uint32 sync_generation = 0;
static bool list_rounds = false;
static uint32 round_number = 0;

/* Earlier due time = higher priority. */
static int
due_cmp(const pairingheap_node *a, const pairingheap_node *b,
		void *arg pg_attribute_unused())
{
	const PollEntry *ea = pairingheap_const_container(PollEntry, node, a);
	const PollEntry *eb = pairingheap_const_container(PollEntry, node, b);

	if (ea->due < eb->due)
		return 1;
	if (ea->due > eb->due)
		return -1;
	return (ea->id < eb->id) ? 1 : (ea->id > eb->id) ? -1 : 0;
}

void
poll_schedule_reset(void)
{
	HASHCTL		ctl;
	MemoryContext old;

	if (schedule_cxt == NULL)
		schedule_cxt = AllocSetContextCreate(TopMemoryContext,
											 "invicti_scan poll schedule",
											 ALLOCSET_DEFAULT_SIZES);
	else
		MemoryContextReset(schedule_cxt);

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(PollEntry);
	ctl.hcxt = schedule_cxt;
	entries = hash_create("invicti_scan poll schedule", 1024, &ctl,
						  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(pg_uuid_t);
	ctl.entrysize = sizeof(ScanIdEntry);
	ctl.hcxt = schedule_cxt;
	by_scan_id = hash_create("invicti_scan scan ids", 1024, &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	old = MemoryContextSwitchTo(schedule_cxt);
	single_heap = pairingheap_allocate(due_cmp, NULL);
	round_heap = pairingheap_allocate(due_cmp, NULL);
	MemoryContextSwitchTo(old);
}

/* Off its heap: in flight, or about to move. */
static void
heap_remove(PollEntry *e)
{
	if (e->heap)
	{
		pairingheap_remove(e->heap, &e->node);
		e->heap = NULL;
	}
}

/* Onto the heap its way of refreshing says, due at e->due. */
static void
heap_insert(PollEntry *e)
{
	heap_remove(e);
	e->heap = (list_rounds && !e->single) ? round_heap : single_heap;
	pairingheap_add(e->heap, &e->node);
}

static void
forget_scan_id(PollEntry *e)
{
	ScanIdEntry *s = hash_search(by_scan_id, &e->scan_id, HASH_FIND, NULL);

	if (s && s->id == e->id)
		hash_search(by_scan_id, &e->scan_id, HASH_REMOVE, NULL);
}

static void
remember_scan_id(PollEntry *e)
{
	ScanIdEntry *s = hash_search(by_scan_id, &e->scan_id, HASH_ENTER, NULL);

	s->id = e->id;
}

void
poll_schedule_add(int64 id, const pg_uuid_t *scan_id, TimestampTz due, bool single)
{
	bool		found;
	PollEntry  *e = hash_search(entries, &id, HASH_ENTER, &found);

	e->seen = sync_generation;
	e->answer = 0;				/* new, or the table changed: ask the row */
	if (found && memcmp(&e->scan_id, scan_id, sizeof(pg_uuid_t)) != 0)
		forget_scan_id(e);
	e->scan_id = *scan_id;
	remember_scan_id(e);
	if (found)
		return;
	e->failures = 0;
	e->refresh_sent_at = 0;
	e->refresh = false;
	e->round_covered = e->round_seen = 0;
	e->single = single;
	e->heap = NULL;
	e->due = due;
	heap_insert(e);
}

static void
remove_entry(PollEntry *e)
{
	int64		id = e->id;

	heap_remove(e);
	forget_scan_id(e);
	/* dynahash allows removing the entry a scan just returned */
	hash_search(entries, &id, HASH_REMOVE, NULL);
}

void
poll_schedule_remove(int64 id)
{
	PollEntry  *e = hash_search(entries, &id, HASH_FIND, NULL);

	if (e)
		remove_entry(e);
}

void
poll_schedule_sync_begin(void)
{
	sync_generation++;
}

int
poll_schedule_sync_end(void)
{
	HASH_SEQ_STATUS status;
	PollEntry  *e;
	int			removed = 0;

	hash_seq_init(&status, entries);
	while ((e = hash_seq_search(&status)) != NULL)
	{
		if (e->seen == sync_generation)
			continue;
		remove_entry(e);
		removed++;
	}
	return removed;
}

void
poll_schedule_set_list_rounds(bool on)
{
	HASH_SEQ_STATUS status;
	PollEntry  *e;

	if (on == list_rounds)
		return;
	list_rounds = on;
	hash_seq_init(&status, entries);
	while ((e = hash_seq_search(&status)) != NULL)
		if (e->heap)
			heap_insert(e);
}

static PollEntry *
first_of(pairingheap *heap)
{
	if (heap == NULL || pairingheap_is_empty(heap))
		return NULL;
	return pairingheap_container(PollEntry, node, pairingheap_first(heap));
}

bool
poll_schedule_take_due(TimestampTz now, int64 *id, pg_uuid_t *scan_id,
					   int *failures)
{
	PollEntry  *e = first_of(single_heap);

	if (e == NULL || e->due > now)
		return false;
	heap_remove(e);
	if (e->refresh)
	{
		e->refresh = false;
		e->refresh_sent_at = now;
	}
	*id = e->id;
	*scan_id = e->scan_id;
	*failures = e->failures;
	return true;
}

TimestampTz
poll_schedule_round_due(void)
{
	PollEntry  *e = first_of(round_heap);

	return e ? e->due : 0;
}

/* The round covers every scan on the round heap now; later ones wait. */
void
poll_schedule_round_begin(void)
{
	HASH_SEQ_STATUS status;
	PollEntry  *e;

	round_number++;
	hash_seq_init(&status, entries);
	while ((e = hash_seq_search(&status)) != NULL)
		if (e->heap == round_heap)
			e->round_covered = round_number;
}

/* Whether any row the worker polls holds this scan id. */
bool
poll_schedule_knows(const pg_uuid_t *scan_id)
{
	return by_scan_id != NULL && hash_search(by_scan_id, scan_id, HASH_FIND, NULL) != NULL;
}

bool
poll_schedule_round_saw(const pg_uuid_t *scan_id, int64 *id)
{
	ScanIdEntry *s = hash_search(by_scan_id, scan_id, HASH_FIND, NULL);
	PollEntry  *e;

	if (s == NULL ||
		(e = hash_search(entries, &s->id, HASH_FIND, NULL)) == NULL ||
		e->heap == NULL)
		return false;
	e->round_seen = round_number;
	heap_remove(e);
	*id = e->id;
	return true;
}

/* The one rule: a scan the current round covers and has not shown. */
static bool
missed_by_round(const PollEntry *e)
{
	return e->heap == round_heap && e->round_covered == round_number &&
		e->round_seen != round_number;
}

int
poll_schedule_round_end(TimestampTz now)
{
	HASH_SEQ_STATUS status;
	PollEntry  *e;
	int			missed = 0;

	hash_seq_init(&status, entries);
	while ((e = hash_seq_search(&status)) != NULL)
	{
		if (!missed_by_round(e))
			continue;
		e->single = true;
		e->due = now;
		heap_insert(e);
		missed++;
	}
	return missed;
}

int
poll_schedule_round_unseen(void)
{
	HASH_SEQ_STATUS status;
	PollEntry  *e;
	int			unseen = 0;

	hash_seq_init(&status, entries);
	while ((e = hash_seq_search(&status)) != NULL)
		if (missed_by_round(e))
			unseen++;
	return unseen;
}

/* When the refresh asked for can be sent: now, or one gap after the last. */
static void
schedule_refresh(PollEntry *e, TimestampTz now)
{
	TimestampTz at = Max(now, TimestampTzPlusMilliseconds(e->refresh_sent_at, REFRESH_GAP_MS));

	e->single = true;
	e->due = Min(e->due, at);
	heap_insert(e);
}

void
poll_schedule_done(int64 id, PollOutcome outcome, TimestampTz now)
{
	PollEntry  *e = hash_search(entries, &id, HASH_FIND, NULL);
	int64		delay_ms = (int64) invicti_poll_interval_s * 1000;

	if (e == NULL)
		return;
	switch (outcome)
	{
		case POLL_OK:
			e->failures = 0;
			e->single = false;
			break;
		case POLL_FAILED:
			e->answer = 0;		/* the row now holds an error */
			e->failures++;
			e->single = true;
			delay_ms = Min(retry_policy_delay_ms(e->failures), delay_ms);
			break;
		case POLL_DEFERRED:
			e->answer = 0;
			delay_ms = 0;
			break;
	}
	e->due = TimestampTzPlusMilliseconds(now, delay_ms);
	heap_insert(e);
	if (e->refresh)
		schedule_refresh(e, now);
}

bool
poll_schedule_refresh(int64 id, TimestampTz now)
{
	PollEntry  *e = hash_search(entries, &id, HASH_FIND, NULL);

	if (e == NULL)
		return false;
	/* a request in flight was sent before the call: another one follows */
	e->refresh = true;
	if (e->heap != NULL)
		schedule_refresh(e, now);
	return true;
}

void
poll_schedule_clamp(TimestampTz latest)
{
	HASH_SEQ_STATUS status;
	PollEntry  *e;

	hash_seq_init(&status, entries);
	while ((e = hash_seq_search(&status)) != NULL)
	{
		if (e->heap == NULL || e->due <= latest)
			continue;
		e->due = latest;
		heap_insert(e);
	}
}

void
poll_schedule_all_due(TimestampTz now)
{
	poll_schedule_clamp(now);
}

uint64
poll_schedule_recorded_answer(int64 id)
{
	PollEntry  *e = hash_search(entries, &id, HASH_FIND, NULL);

	return e ? e->answer : 0;
}

void
poll_schedule_set_recorded_answer(int64 id, uint64 answer)
{
	PollEntry  *e = hash_search(entries, &id, HASH_FIND, NULL);

	if (e)
		e->answer = answer;
}

TimestampTz
poll_schedule_next_due(void)
{
	PollEntry  *e = first_of(single_heap);

	return e ? e->due : 0;
}

int
poll_schedule_count(void)
{
	return entries ? (int) hash_get_num_entries(entries) : 0;
}
