/*
 * untracked_scans.h
 *		Running scans the API lists that no row tracks (untracked_scans.c).
 */
#ifndef UNTRACKED_SCANS_H
#define UNTRACKED_SCANS_H

#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "api_response.h"

extern void untracked_scans_note(const pg_uuid_t *scan_id, const ApiScanState *state,
								 JsonbValue *item);
extern void untracked_scans_flush(void);
extern void untracked_scans_forget(void);

#endif							/* UNTRACKED_SCANS_H */
