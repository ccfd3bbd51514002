# invicti_scan: PGXS build.
#
# The version lives in one place, invicti_scan.control (default_version);
# everything else here derives from it.  Warning flags are not hard-coded:
# pass them in, e.g. `make COPT='-Wall -Wextra -Werror'` (the test command
# does).  The two commands users need are `make demo` and `make test`; both
# work before PostgreSQL's development files are installed, because they
# install them.

EXTENSION   = invicti_scan
EXTVERSION := $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" $(EXTENSION).control)

MODULE_big  = invicti_scan
OBJS = \
	src/invicti_scan.o \
	src/settings.o \
	src/shared_state.o \
	src/sql_api.o \
	src/worker.o \
	src/api_client.o \
	src/api_response.o \
	src/scan_store.o \
	src/poll_schedule.o \
	src/retry_policy.o \
	src/scan_jobs.o \
	src/commit_wake.o \
	src/scan_events.o

DATA        = $(wildcard sql/$(EXTENSION)--*.sql)

# pg_regress suites: sql/<topic>.sql with expected/<topic>.out.  They run
# against a throwaway instance (see test/run_regress.sh), not `installcheck`.
REGRESS     = launch privileges abort reporting

PG_CONFIG  ?= pg_config
PGXS       := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)

ifneq ($(wildcard $(PGXS)),)
CURL_CONFIG ?= curl-config
# PostgreSQL's headers are system headers to us: -isystem keeps -Wextra
# (when the caller asks for it) about our code, not theirs.
PG_CPPFLAGS = -isystem $(shell $(PG_CONFIG) --includedir-server) \
	-DINVICTI_SCAN_VERSION='"$(EXTVERSION)"' \
	$(shell $(CURL_CONFIG) --cflags 2>/dev/null)
SHLIB_LINK  = $(shell $(CURL_CONFIG) --libs 2>/dev/null || echo -lcurl)
EXTRA_CLEAN = results regression.diffs regression.out tmp_check tmp_regress

include $(PGXS)

# The version is compiled in (User-Agent, the worker's version check).
$(OBJS): $(EXTENSION).control
else
all install installcheck:
	@echo "PostgreSQL's server development files were not found (pg_config --pgxs)."
	@echo "Install postgresql-server-dev-15 and libcurl4-openssl-dev, or run 'make test'."
	@exit 1
endif

# The README's two commands; they install what they need first.
.PHONY: test demo
test:
	./test/run_all.sh

demo:
	./test/demo.sh
