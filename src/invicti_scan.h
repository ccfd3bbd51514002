/*
 * invicti_scan.h
 *		Names shared by the modules of invicti_scan.
 */
#ifndef INVICTI_SCAN_H
#define INVICTI_SCAN_H

#include "postgres.h"

#define INVICTI_EXTENSION_NAME "invicti_scan"
#define INVICTI_WORKER_NAME "invicti_scan worker"

extern PGDLLEXPORT void invicti_worker_main(Datum main_arg);
extern PGDLLEXPORT void invicti_database_check_main(Datum main_arg);

#endif
