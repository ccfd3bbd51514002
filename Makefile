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
	src/pg_compat.o \
	src/settings.o \
	src/shared_state.o \
	src/api_call.o \
	src/api_client.o \
	src/api_response.o \
	src/redact.o \
	src/log_limit.o \
	src/scan_state.o \
	src/severity_counts.o \
	src/scan_store.o \
	src/catalog_store.o \
	src/report_store.o \
	src/store_transaction.o \
	src/poll_schedule.o \
	src/retry_policy.o \
	src/request_budget.o \
	src/rate_limit_headers.o \
	src/jobs.o \
	src/job_launch.o \
	src/job_poll.o \
	src/job_list.o \
	src/job_abort.o \
	src/job_import.o \
	src/job_sync.o \
	src/job_target.o \
	src/job_report.o \
	src/target_address.o \
	src/launch_options.o \
	src/table_work.o \
	src/server_origin.o \
	src/untracked_scans.o \
	src/extension_watch.o \
	src/worker_config.o \
	src/database_wait.o \
	src/worker.o \
	src/sql_api.o \
	src/sql_failover.o \
	src/sql_gate.o \
	src/sql_catalog.o \
	src/sql_report.o \
	src/scan_wait.o \
	src/commit_wake.o \
	src/scan_events.o

# Install scripts and upgrades, and the per-version control files
# (invicti_scan--1.1.control) that an upgrade step needs.
DATA        = $(wildcard sql/$(EXTENSION)--*.sql) $(wildcard $(EXTENSION)--*.control)

# pg_regress suites: sql/<topic>.sql with expected/<topic>.out.  `make
# installcheck` (after `make install`) runs them, as pg_cron's do, on a
# temporary instance that preloads the library (test/regress.conf), so
# they need no server of yours and touch none.
REGRESS      = launch privileges abort reporting security state_machine relocate refresh wait catalog report
REGRESS_OPTS = --temp-instance=tmp_regress --temp-config=test/regress.conf

# TAP suites (test/t/*.pl, PostgreSQL::Test::Cluster against the project's
# Invicti simulator): `make prove_installcheck` after `make install`, as
# pgvector's; each test starts its own servers.  PROVE_TESTS picks files.
ifeq ($(strip $(PROVE_TESTS)),)
PROVE_TESTS = test/t/*.pl
endif

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
EXTRA_CLEAN = results regression.diffs regression.out tmp_check tmp_regress META.json $(EXTENSION)-*.zip

include $(PGXS)

PG_PROVE_FLAGS += -I $(srcdir)/test/perl
.PHONY: prove_installcheck
prove_installcheck:
	$(prove_installcheck)

# The version is compiled in (User-Agent, the worker's version check).  PGXS
# tracks no header dependencies: every object depends on every header, so
# no two objects ever disagree on a struct (shared memory, for one).
$(OBJS): $(EXTENSION).control $(wildcard src/*.h)
else
all install installcheck prove_installcheck:
	@echo "PostgreSQL's server development files were not found (pg_config --pgxs)."
	@echo "Install postgresql-server-dev-15 and libcurl4-openssl-dev, or run 'make test'."
	@exit 1
endif

# PGXN: META.json is made from META.json.in with the control file's
# version (as PGXN's semantic version: 1.3 is 1.3.0), and `make dist`
# archives the committed tree (HEAD) with it, as PGXN takes it.
EXTSEMVER := $(shell echo '$(EXTVERSION)' | sed 's/^\([0-9]*\.[0-9]*\)$$/\1.0/')
DISTNAME   = $(EXTENSION)-$(EXTSEMVER)

META.json: META.json.in $(EXTENSION).control
	sed 's/@SEMVER@/$(EXTSEMVER)/g' $< >$@

.PHONY: dist
dist: META.json
	git archive --format=zip --prefix=$(DISTNAME)/ --add-file=META.json \
		-o $(DISTNAME).zip HEAD
	@echo "$(DISTNAME).zip"

# The README's two commands; they install what they need first.  `make
# test` is exactly `test/run_all.sh`: this make's own variables (MAKELEVEL,
# MAKEFLAGS) are not passed down, since PostgreSQL's build, which the
# script may run, makes its generated headers only at MAKELEVEL 0.
.PHONY: test demo
test:
	env -u MAKELEVEL -u MAKEFLAGS -u MFLAGS PG="$(PG)" ./test/run_all.sh

demo:
	./test/demo.sh
