/*
 * severity_counts.h
 *		What a scan's severity counts are, and how the severity gate reads
 *		them (see severity_counts.c).
 */
#ifndef INVICTI_SEVERITY_COUNTS_H
#define INVICTI_SEVERITY_COUNTS_H

#include "utils/jsonb.h"

#define NUM_SEVERITIES 5

/* "critical", "high", "medium", "low", "info": most severe first. */
extern const char *const severity_names[NUM_SEVERITIES];

/* The level of a name (0 = critical ... 4 = info), or -1. */
extern int	severity_level(const char *name);

/* NULL when counts is a valid severity_counts object, else why not (a phrase). */
extern const char *severity_counts_problem(Jsonb *counts);

/* Findings at `level` or more severe; counts must be valid. */
extern int64 severity_counts_at_or_above(Jsonb *counts, int level);

#endif
