/*
 * launch_options.h
 *		The options of invicti_launch_scan() (see launch_options.c).
 */
#ifndef INVICTI_LAUNCH_OPTIONS_H
#define INVICTI_LAUNCH_OPTIONS_H

#include "lib/stringinfo.h"
#include "utils/jsonb.h"

/* Refuse, with an error naming the key, options the spec's Scan does not take. */
extern void launch_options_check(Jsonb *options);

/* The launch request's body: the seed's, with the (checked) options in it. */
extern void launch_options_body(StringInfo body, const char *target_id,
								const char *profile_id, Jsonb *options);

#endif
