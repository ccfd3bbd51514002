/*
 * extension_watch.c
 *		The worker's knowledge of its extension: installed or not, at which
 *		version, and the one log line for each change.
 *
 * The extension may be created, dropped, re-created or updated while the
 * worker runs.  Every transaction looks it up (store_transaction.c); this
 * file turns the answers into a state, says once at LOG (missing) or
 * WARNING (another version) what the worker waits for, and says when to
 * look again.  CREATE, ALTER and DROP EXTENSION also wake the worker at
 * commit (commit_wake.c), so the recheck timer is only a safety net.
 *
 * Rules: no database access here; only the store's answers.
 */
#include "postgres.h"

#include "utils/timestamp.h"

#include "extension_watch.h"
#include "invicti_scan.h"
#include "settings.h"

/* How often to look again for a missing extension (also woken by CREATE). */
#define EXTENSION_RECHECK_MS 10000

typedef enum ExtensionState
{
	EXT_UNKNOWN,
	EXT_READY,
	EXT_MISSING,
	EXT_WRONG_VERSION
} ExtensionState;

static ExtensionState state = EXT_UNKNOWN;
static TimestampTz recheck_at = 0;

bool
extension_watch_note(StoreStatus status)
{
	ExtensionState now = status == STORE_READY ? EXT_READY :
		status == STORE_NO_EXTENSION ? EXT_MISSING : EXT_WRONG_VERSION;

	if (now != EXT_READY)
		recheck_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												 EXTENSION_RECHECK_MS);
	if (now == state)
		return now == EXT_READY;

	if (now == EXT_MISSING)
		ereport(LOG,
				(errmsg("invicti_scan worker: extension \"%s\" is not installed in database \"%s\"; waiting for CREATE EXTENSION",
						INVICTI_EXTENSION_NAME, invicti_database_name)));
	else if (now == EXT_WRONG_VERSION)
		ereport(WARNING,
				(errmsg("invicti_scan worker: the installed extension is version %s but the library is version %s; waiting",
						store_installed_version(), INVICTI_SCAN_VERSION),
				 errhint("Run ALTER EXTENSION invicti_scan UPDATE in database \"%s\".",
						 invicti_database_name)));
	state = now;
	return now == EXT_READY;
}

bool
extension_watch_ready(void)
{
	return state == EXT_READY;
}

void
extension_watch_forget(void)
{
	state = EXT_UNKNOWN;
}

TimestampTz
extension_watch_recheck_at(void)
{
	return recheck_at;
}
