/*
 * rate_limit_headers.h
 *		A server's rate-limit window, from its response headers.
 */
#ifndef INVICTI_RATE_LIMIT_HEADERS_H
#define INVICTI_RATE_LIMIT_HEADERS_H

#include "api_client.h"

/*
 * Requests the server's window has left and seconds until it resets, from
 * X-RateLimit-*, RateLimit-* or RateLimit; false unless both are given.
 */
extern bool api_rate_limit_window(const ApiResponse *r, double *remaining,
								  double *reset_s);

#endif
