/*
 * commit_wake.h
 *		Waking the worker when a transaction commits (see commit_wake.c).
 */
#ifndef INVICTI_COMMIT_WAKE_H
#define INVICTI_COMMIT_WAKE_H

/* Set the worker's latch when the current transaction commits. */
extern void invicti_wake_worker_at_commit(void);

/*
 * Run fn(arg), whose changes to invicti_scans the caller announces itself
 * (with invicti_wake_worker_at_commit), so the table's trigger stays quiet.
 */
extern void invicti_run_own_statement(void (*fn) (void *), void *arg);

/* _PG_init, when preloaded: wake the worker after any extension DDL. */
extern void invicti_watch_extension_ddl(void);

/* The worker: its own changes never wake it. */
extern void invicti_commit_wake_in_worker(void);

#endif
