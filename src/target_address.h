/*
 * target_address.h
 *		Whether a string may be the address of a new Invicti target.
 */
#ifndef INVICTI_TARGET_ADDRESS_H
#define INVICTI_TARGET_ADDRESS_H

/* NULL when `address` may be a target's address, else why not (a clause). */
extern const char *target_address_problem(const char *address);

#endif
