/*
 * database_wait.h
 *		Waiting, without dying, for the worker's database to exist.
 */
#ifndef INVICTI_DATABASE_WAIT_H
#define INVICTI_DATABASE_WAIT_H

/* Return once invicti_scan.database_name exists; one LOG line until then. */
extern void database_wait(void);

#endif
