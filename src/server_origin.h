/*
 * server_origin.h
 *		Which server this is, and whether it may lack the last commits of
 *		the one that sent the queued requests (server_origin.c).
 */
#ifndef SERVER_ORIGIN_H
#define SERVER_ORIGIN_H

#include "access/xlogdefs.h"

typedef struct ServerIdentity
{
	uint64		system_identifier;	/* pg_control's; new after initdb or
									 * pg_upgrade */
	TimeLineID	timeline;		/* new after every promotion or PITR */
} ServerIdentity;

extern ServerIdentity server_identity(void);
extern bool server_origin_check(void);

#endif							/* SERVER_ORIGIN_H */
