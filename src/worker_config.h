/*
 * worker_config.h
 *		Whether the worker may send requests with the current settings.
 */
#ifndef INVICTI_WORKER_CONFIG_H
#define INVICTI_WORKER_CONFIG_H

/* At start: read the token file and remember the settings; log the problem if any. */
extern void worker_config_load(void);

/*
 * On SIGHUP: re-read the configuration and the token file.  Returns true
 * when anything that decides where and how requests go has changed.
 */
extern bool worker_config_reload(void);

/* Why no request may be sent now, or NULL. */
extern const char *worker_config_problem(void);

#endif
