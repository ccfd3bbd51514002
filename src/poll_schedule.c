/*
 * poll_schedule.c
 *		Which running scan to poll next, kept in the worker's memory.
 *
 * Why memory and not a column: a poll that finds nothing new must write
 * nothing.  Storing "next poll at" in the row would rewrite every running
 * scan's tuple (and an index entry) every poll_interval, bloating the table
 * for scans that run for days.  The row is written only when the API says
 * something new; the timetable lives here, and after a restart every running
 * scan is simply due at once.
 *
 * Each scan also remembers a hash of the answer its row holds, so that a
 * poll that hears the same bytes again needs no transaction; the hash is
 * forgotten whenever the row may hold something else (an error recorded, the
 * table changed behind the worker).
 *
 * A hash table finds a scan by row id; a pairing heap (PostgreSQL's
 * lib/pairingheap) hands out the earliest due one.  A scan whose request is
 * in flight is in the hash but not in the heap.  Everything lives in one
 * memory context that is reset as a whole.  Nothing here does I/O.
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
	int			failures;		/* consecutive failed polls */
	uint32		seen;			/* sync_generation when last confirmed */
	uint64		answer;			/* hash of the answer in the row; 0 = unknown */
	bool		in_heap;
	pairingheap_node node;
} PollEntry;

static MemoryContext schedule_cxt = NULL;
static HTAB *entries = NULL;
static pairingheap *heap = NULL;
static uint32 sync_generation = 0;

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
	{
		MemoryContext old = MemoryContextSwitchTo(schedule_cxt);

		heap = pairingheap_allocate(due_cmp, NULL);
		MemoryContextSwitchTo(old);
	}
}

static void
heap_insert(PollEntry *e)
{
	pairingheap_add(heap, &e->node);
	e->in_heap = true;
}

static void
heap_remove(PollEntry *e)
{
	if (e->in_heap)
	{
		pairingheap_remove(heap, &e->node);
		e->in_heap = false;
	}
}

void
poll_schedule_add(int64 id, const pg_uuid_t *scan_id, TimestampTz due)
{
	bool		found;
	PollEntry  *e = hash_search(entries, &id, HASH_ENTER, &found);

	e->seen = sync_generation;
	e->scan_id = *scan_id;
	e->answer = 0;				/* new, or the table changed: ask the row */
	if (found)
		return;
	e->failures = 0;
	e->due = due;
	heap_insert(e);
}

void
poll_schedule_remove(int64 id)
{
	PollEntry  *e = hash_search(entries, &id, HASH_FIND, NULL);

	if (e == NULL)
		return;
	heap_remove(e);
	hash_search(entries, &id, HASH_REMOVE, NULL);
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
		int64		id = e->id;

		if (e->seen == sync_generation)
			continue;
		/* dynahash allows removing the entry a scan just returned */
		heap_remove(e);
		hash_search(entries, &id, HASH_REMOVE, NULL);
		removed++;
	}
	return removed;
}

bool
poll_schedule_take_due(TimestampTz now, int64 *id, pg_uuid_t *scan_id,
					   int *failures)
{
	PollEntry  *e;

	if (pairingheap_is_empty(heap))
		return false;
	e = pairingheap_container(PollEntry, node, pairingheap_first(heap));
	if (e->due > now)
		return false;
	heap_remove(e);
	*id = e->id;
	*scan_id = e->scan_id;
	*failures = e->failures;
	return true;
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
			break;
		case POLL_FAILED:
			e->answer = 0;		/* the row now holds an error */
			e->failures++;
			delay_ms = Min(retry_policy_delay_ms(e->failures), delay_ms);
			break;
		case POLL_DEFERRED:
			e->answer = 0;
			delay_ms = 0;
			break;
	}
	heap_remove(e);
	e->due = TimestampTzPlusMilliseconds(now, delay_ms);
	heap_insert(e);
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
	if (heap == NULL || pairingheap_is_empty(heap))
		return 0;
	return pairingheap_container(PollEntry, node, pairingheap_first(heap))->due;
}

int
poll_schedule_count(void)
{
	return entries ? (int) hash_get_num_entries(entries) : 0;
}
