/*
 * store_transaction.h
 *		The worker's transactions: where, as whom and how they run.
 */
#ifndef INVICTI_STORE_TRANSACTION_H
#define INVICTI_STORE_TRANSACTION_H

#include "datatype/timestamp.h"

typedef enum StoreStatus
{
	STORE_READY,				/* the work ran and committed */
	STORE_NO_EXTENSION,			/* not installed in this database (yet) */
	STORE_WRONG_VERSION			/* installed, but not the library's version */
} StoreStatus;

/*
 * Run fn(arg) in one transaction, with SPI connected and a snapshot pushed,
 * as the owner of the extension's tables (see store_transaction.c).
 * `durable` makes the commit synchronous (launch bookkeeping must survive a
 * crash); otherwise it is asynchronous (a lost poll result is polled again).
 *
 * Returns STORE_READY once the transaction committed.  Otherwise fn did not
 * run and no transaction is left open.  An error from fn or from the commit
 * rolls the transaction back, forgets prepared plans and is thrown on.
 */
extern StoreStatus store_run(const char *activity, bool durable,
							 void (*fn) (void *arg), void *arg);

/*
 * Inside store_run: run fn(arg) in a subtransaction, so that its failure
 * undoes only its own writes.  Returns false when it raised an error, with
 * the error's message (palloc'd) in *message; errors that must not be
 * caught (query cancel, shutdown, out of memory) are thrown on.
 */
extern bool store_attempt(void (*fn) (void *arg), void *arg, char **message);

/* The extension's tables, schema-qualified and quoted, as of store_run. */
extern const char *store_scans_table(void);
extern const char *store_findings_table(void);

/* The installed version, after store_run returned STORE_WRONG_VERSION. */
extern const char *store_installed_version(void);

/* True once after the extension appeared, was re-created or moved. */
extern bool store_extension_changed(void);

/*
 * Flush pending table statistics (force: even if flushed less than a
 * second ago); store_stats_flush_due() says when the rest is due, 0 if none.
 */
extern void store_flush_stats(bool force);
extern TimestampTz store_stats_flush_due(void);

#endif
