/*
 * extension_watch.h
 *		Whether the worker's extension is installed, at the library's
 *		version, in its database.
 */
#ifndef INVICTI_EXTENSION_WATCH_H
#define INVICTI_EXTENSION_WATCH_H

#include "datatype/timestamp.h"

#include "store_transaction.h"

/*
 * Note what a transaction found.  Says so once in the log when the answer
 * changes.  Returns true when the extension is usable; false means every
 * piece of work in progress belongs to a schema that is gone.
 */
extern bool extension_watch_note(StoreStatus status);

/* Usable as far as the last transaction knew. */
extern bool extension_watch_ready(void);

/* After an error nothing is known: look again at the next chance. */
extern void extension_watch_forget(void);

/* While not usable: when to look again (also woken by extension DDL). */
extern TimestampTz extension_watch_recheck_at(void);

#endif
