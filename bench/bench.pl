# bench.pl: the invicti_scan benchmarks (run by bench/run).
#
# Measures what the extension costs the database it runs in, and how fast
# it drives a slow API, against the simulator on loopback, and prints one
# table: figure, what was measured, the target, and whether it was met.
# Each figure gets its own throwaway cluster (and simulator), so one cannot
# disturb another; ratios are measured side by side in one run.
#
#   latency      commit -> POST received by the API (simulator's log)
#   concurrency  1,000 scans through a 1 s API at 64 requests in flight
#   cpu          the worker's CPU per API request over 20,000 polls, and its
#                memory after 1,000 and 100,000 requests (one run)
#   idle         10,000 finished scans, nothing due: queries and CPU in 60 s
#   enqueue      pgbench: invicti_launch_scan() vs a plain INSERT
#   tick         the "what is due" queries with 10 k and 1 M finished rows
#   polling      status requests per running scan per poll interval, by
#                list, at 100, 1,000 and 10,000 running scans (against
#                scan by scan: 1.0); the longest gap between two refreshes
#                of a row against poll_interval; the worker's memory and
#                how soon polling resumes after a restart, at 10,000
#   writes       the worker's CPU per recorded change when every refresh
#                changes every row (progress), by list and scan by scan
#   rate429      60 scans through random 429s (0, 5, 15, 30%), the adaptive
#                limit against none, side by side
#   limit        30,000 findings imported: the adaptive limit against none
#                with no server limit, and against a server limit of 600 a
#                minute (token bucket, fixed window, with headers)
#   economy      status requests per running scan per interval over the
#                whole lifecycle of 300 short scans
#
# BENCH_ONLY (space-separated names above) runs a subset.  It is a
# benchmark, not a test: the only thing that fails it is a figure that
# could not be measured (a crashed worker, a run that stalled); a missed
# target is printed as missed.  It must never talk to anything but the
# simulator on loopback, and never leave a server running.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use List::Util qw(sum max min);
use POSIX qw(sysconf _SC_CLK_TCK);
use JSON::PP;
use InvictiTest;

my %only = map { $_ => 1 } split ' ', ($ENV{BENCH_ONLY} // '');
my @table;    # [figure, measured, target, verdict]

sub wanted { return !%only || $only{ $_[0] } }

# A line of the table; $detail is printed now, not in the table.
sub row
{
	my ($figure, $measured, $target, $met, $detail) = @_;
	push @table, [ $figure, $measured, $target,
		!defined $met ? 'reported' : $met ? 'met' : 'MISSED' ];
	diag(sprintf('%s: %s (target %s)', $figure, $measured, $target));
	diag("  $detail") if $detail;
}

# Settings every benchmark cluster shares: a production-like commit (the
# test framework turns fsync off) and a quiet log.
my %base_settings = (
	fsync => 'on',
	log_statement => "'none'",
	log_min_messages => 'warning',
	'invicti_scan.request_timeout' => "'30s'",
	'invicti_scan.retry_max_delay' => "'5min'",
);

sub bench_node
{
	my ($name, $sim, %settings) = @_;
	return new_node($name, sim => $sim, settings => { %base_settings, %settings });
}

# ---- reading a process from /proc ------------------------------------------

my $clk_tck = sysconf(_SC_CLK_TCK) || 100;

# The worker's CPU time so far: { ns => on-CPU ns (schedstat), user, sys
# (clock ticks from stat, in ms) }.
sub cpu_of
{
	my ($pid) = @_;
	open(my $st, '<', "/proc/$pid/stat") or die "worker $pid is gone: $!";
	my $stat = <$st>;
	$stat =~ s/^.*\) //;    # the command name may hold spaces
	my @f = split ' ', $stat;
	my %c = (user => $f[11] * 1000 / $clk_tck, sys => $f[12] * 1000 / $clk_tck);
	if (open(my $ss, '<', "/proc/$pid/schedstat"))
	{
		($c{ns}) = split ' ', scalar <$ss>;
	}
	$c{ns} //= ($c{user} + $c{sys}) * 1e6;
	return \%c;
}

sub cpu_delta_ms
{
	my ($a, $b) = @_;
	return (($b->{ns} - $a->{ns}) / 1e6, $b->{user} - $a->{user}, $b->{sys} - $a->{sys});
}

sub memory_of
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/status") or die "worker $pid is gone: $!";
	my %m;
	while (my $line = <$fh>)
	{
		$m{$1} = $2 if $line =~ /^(VmRSS|RssAnon):\s+(\d+) kB/;
	}
	return \%m;
}

sub percentile
{
	my ($p, @v) = @_;
	@v = sort { $a <=> $b } @v;
	return $v[ int($p / 100 * $#v + 0.5) ];
}

sub sim_total { return $_[0]->control('GET', '/_sim/stats')->{total} }

# Wait until the simulator has answered $want requests in all; dies when
# nothing moves for a minute or the worker is gone.
sub wait_requests
{
	my ($sim, $want, $pid) = @_;
	my ($last, $since) = (-1, time());
	while ((my $n = sim_total($sim)) < $want)
	{
		die "worker $pid is gone: it crashed or was restarted\n" unless -e "/proc/$pid";
		($last, $since) = ($n, time()) if $n != $last;
		die "no API request for 60 s at $n of $want\n" if time() - $since > 60;
		sleep($want - $n > 2000 ? 0.5 : 0.01);
	}
}

# A psql script of $n launches, one per transaction, $pause seconds apart.
# With $record, each transaction also notes clock_timestamp() just before
# it commits, in bench_commit.
sub launch_script
{
	my ($prefix, $n, $pause, $record) = @_;
	my $p = PROFILE_HIGH_RISK;
	return join '', map {
		my $launch = "invicti_launch_scan('" . target_uuid("$prefix-$_") . "', '$p')";
		($record
			? "BEGIN;\nINSERT INTO bench_commit SELECT $launch, clock_timestamp();\nCOMMIT;\n"
			: "SELECT $launch;\n")
		  . "SELECT pg_sleep($pause);\n"
	} 1 .. $n;
}

# ---- commit -> POST received --------------------------------------------------

sub bench_latency
{
	my $n = 100;
	my $sim = start_simulator(
		targets => [ map { { target_id => target_uuid("lat-$_"), outcome => 'stuck_unknown' } } 1 .. $n ]);
	my $node = bench_node('latency', $sim, 'invicti_scan.poll_interval' => "'5min'");
	$node->safe_psql('postgres', 'CREATE TABLE bench_commit (id bigint, committing_at timestamptz)');
	my $seq = $sim->next_seq;
	# The timestamp is taken inside the transaction, before COMMIT: the
	# figure includes the commit itself, and psql's round trip to send it.
	$node->safe_psql('postgres', launch_script('lat', $n, 0.1, 1));
	wait_until(sub { grep({ $_->{method} eq 'POST' } $sim->log_entries($seq)) >= $n },
		"$n launches sent");
	my %arrived = map { $_->{target_id} => $_->{time} }
	  grep { $_->{method} eq 'POST' } $sim->log_entries($seq);
	my @ms;
	for my $line (split /\n/, $node->safe_psql('postgres',
			"SELECT s.target_id, extract(epoch FROM c.committing_at)
			 FROM bench_commit c JOIN invicti_scans s USING (id)"))
	{
		my ($target, $t) = split /\|/, $line;
		push @ms, 1000 * ($arrived{$target} - $t) if $arrived{$target};
	}
	is(scalar(@ms), $n, "every launch matched to its POST");
	my ($med, $p95) = (percentile(50, @ms), percentile(95, @ms));
	row('commit -> POST received',
		sprintf('median %.1f ms, p95 %.1f ms, max %.1f ms (%d launches)', $med, $p95, max(@ms), $n),
		'median <= 20 ms, p95 <= 50 ms', $med <= 20 && $p95 <= 50);
	$node->stop;
	$sim->stop;
}

# ---- concurrency under a slow API ---------------------------------------------

sub bench_concurrency
{
	my ($n, $slots, $latency_ms, $polls) = (1000, 64, 1000, 3);
	my @targets = map { target_uuid("slow-$_") } 1 .. $n;
	my $sim = start_simulator(
		targets => [ map { { target_id => $_, outcome => 'completed',
					duration_scale => 1e6, polls_to_finish => $polls } } @targets ]);
	$sim->faults({ match => { path => '^/api/' }, fault => 'latency', ms => $latency_ms });
	my $node = bench_node('concurrency', $sim,
		'invicti_scan.poll_method' => 'scan',
		'invicti_scan.max_concurrent_requests' => $slots,
		'invicti_scan.poll_interval' => "'1s'",
		'invicti_scan.import_vulnerabilities' => 'off');
	my $seq = $sim->next_seq;
	my $t0 = time();
	launch_many($node, @targets);
	wait_for($node, "SELECT count(*) = $n FROM invicti_scans WHERE status = 'completed'",
		"$n scans completed", 900);
	my $elapsed = time() - $t0;
	my @log = $sim->log_entries($seq);
	my $requests = grep { $_->{path} =~ m{^/api/} } @log;
	my $posts = grep { $_->{method} eq 'POST' } @log;
	is($posts, $n, 'one POST per scan');
	my $ideal = $requests * $latency_ms / 1000 / $slots;
	row('concurrency under a slow API',
		sprintf('%.1f s for %d requests; ideal %.1f s; %.2fx', $elapsed, $requests, $ideal,
			$elapsed / $ideal),
		'<= 1.1x ideal', $elapsed / $ideal <= 1.1);
	$node->stop;
	$sim->stop;
}

# ---- CPU per request and memory ---------------------------------------------

sub bench_cpu
{
	my ($n, $cpu_requests, $mem_requests) = (1000, 20_000, 100_000);
	my @targets = map { target_uuid("cpu-$_") } 1 .. $n;
	my $sim = start_simulator(
		targets => [ map { { target_id => $_, outcome => 'stuck_unknown' } } @targets ]);
	my $node = bench_node('cpu', $sim,
		'invicti_scan.poll_method' => 'scan',
		'invicti_scan.max_concurrent_requests' => 64,
		'invicti_scan.poll_interval' => "'1s'");
	my $pid = worker_pid($node);
	launch_many($node, @targets);
	wait_for($node, "SELECT count(*) = $n FROM invicti_scans WHERE status = 'under_review'",
		"$n scans parked", 600);
	my $base = sim_total($sim);
	wait_requests($sim, $base + 1000, $pid);
	my ($c1, $m1, $r1, $t1) = (cpu_of($pid), memory_of($pid), sim_total($sim), time());
	wait_requests($sim, $r1 + $cpu_requests, $pid);
	my ($c2, $r2, $t2) = (cpu_of($pid), sim_total($sim), time());
	wait_requests($sim, $base + $mem_requests, $pid);
	my ($m3, $r3) = (memory_of($pid), sim_total($sim));
	is(worker_pid($node), $pid, 'one worker served every request');

	my ($ms, $user, $sys) = cpu_delta_ms($c1, $c2);
	my $us = 1000 * $ms / ($r2 - $r1);
	row('worker CPU per API request',
		sprintf('%.1f us (user %.0f ms + sys %.0f ms over %d polls at %.0f req/s)',
			$us, $user, $sys, $r2 - $r1, ($r2 - $r1) / ($t2 - $t1)),
		'report; lower every turn', undef);
	my $growth = $m3->{RssAnon} - $m1->{RssAnon};
	row('worker memory',
		sprintf('RssAnon %d -> %d kB (%+d kB), VmRSS %d -> %d kB, at %d and %d requests',
			$m1->{RssAnon}, $m3->{RssAnon}, $growth, $m1->{VmRSS}, $m3->{VmRSS},
			$r1 - $base, $r3 - $base),
		'growth <= 2 MB', $growth <= 2048);
	$node->stop;
	$sim->stop;
}

# ---- idle cost ------------------------------------------------------------

# Statements the worker ran, from pg_stat_statements (everything but the
# benchmark's own reads of the view).
sub worker_statements
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT coalesce(sum(calls), 0) || '|' || coalesce(string_agg(
		        calls || 'x ' || left(regexp_replace(query, '\\s+', ' ', 'g'), 60), '; '), '')
		 FROM pg_stat_statements
		 WHERE query NOT LIKE '%pg_stat_statements%' AND dbid = (
		       SELECT oid FROM pg_database WHERE datname = current_database())");
}

my %pgss_settings = (
	shared_preload_libraries => "'invicti_scan,pg_stat_statements'",
	'pg_stat_statements.track' => 'all',
	'pg_stat_statements.track_planning' => 'on',
);

sub bench_idle
{
	my ($n, $window) = (10_000, $ENV{BENCH_IDLE_SECONDS} || 60);
	my $sim = start_simulator();
	my $node = bench_node('idle', $sim, %pgss_settings);
	$node->safe_psql('postgres', 'CREATE EXTENSION pg_stat_statements');
	insert_history($node, $n);
	# whatever the inserts woke is over well before the window starts
	sleep 5;
	my $pid = worker_pid($node);
	$node->safe_psql('postgres', 'SELECT pg_stat_statements_reset()');
	my $c1 = cpu_of($pid);
	sleep $window;
	my $c2 = cpu_of($pid);
	my ($calls, $what) = split /\|/, worker_statements($node), 2;
	my ($ms) = cpu_delta_ms($c1, $c2);
	row('idle cost',
		sprintf('%d queries, %.2f ms CPU in %d s, %d finished scans', $calls, $ms, $window, $n),
		'0 queries, <= 10 ms CPU', $calls == 0 && $ms <= 10,
		$calls ? "the worker's statements: $what" : undef);
	$node->stop;
	$sim->stop;
}

# $n finished scans, as if launched over the past year: rows the worker
# is done with (triggers off: nobody needs a million NOTIFYs).
sub insert_history
{
	my ($node, $n) = @_;
	$node->safe_psql('postgres', "
		SET session_replication_role = replica;
		INSERT INTO invicti_scans (target_id, profile_id, status, worker_state, scan_id,
		    scan_session_id, progress, severity_counts, start_date, end_date, created_at,
		    updated_at, launched_by, attempts, next_attempt_at)
		SELECT gen_random_uuid(), '" . PROFILE_HIGH_RISK . "', 'completed', 'done',
		    gen_random_uuid(), gen_random_uuid(), 100,
		    '{\"critical\": 0, \"high\": 2, \"medium\": 3, \"low\": 5, \"info\": 8}',
		    t, t + interval '2 hours', t, t + interval '2 hours', current_user, 1, NULL
		FROM (SELECT now() - (i * interval '1 year' / $n) AS t
		      FROM generate_series(1, $n) i) g;
		RESET session_replication_role;
		VACUUM ANALYZE invicti_scans;");
}

# ---- enqueue cost ---------------------------------------------------------

sub pgbench_tps
{
	my ($node, $script, $seconds) = @_;
	my ($out, $err) = run_command([ 'pgbench', '-n', '-c', 2, '-j', 2, '-T', $seconds,
			'-f', $script, $node->connstr('postgres') ]);
	$out =~ /^number of transactions actually processed: (\d+)/m
	  or die "pgbench: $out\n$err";
	return $1;
}

sub bench_enqueue
{
	my ($seconds, $rounds) = ($ENV{BENCH_PGBENCH_SECONDS} || 5, 6);
	my $sim = start_simulator();
	# The API pauses the worker for the whole run (429, Retry-After an
	# hour): the figure is what a launch costs the caller, not what the
	# simulator costs this 2-core machine.  The worker still wakes at
	# every commit.
	$sim->faults({ match => { path => '^/api/' }, fault => 'status', status => 429,
			retry_after => 3600 });
	my $node = bench_node('enqueue', $sim, synchronous_commit => 'off');
	launch($node, target_uuid('enqueue-first'));
	wait_for($node, "SELECT paused_until IS NOT NULL FROM invicti_scan_worker_stats()",
		'the API paused the worker');
	$node->safe_psql('postgres', 'CREATE TABLE bench_plain (LIKE invicti_scans INCLUDING ALL)');
	my $dir = PostgreSQL::Test::Utils::tempdir('pgbench');
	my $p = PROFILE_HIGH_RISK;
	PostgreSQL::Test::Utils::append_to_file("$dir/launch.sql",
		"SELECT invicti_launch_scan(gen_random_uuid(), '$p');\n");
	PostgreSQL::Test::Utils::append_to_file("$dir/insert.sql",
		"INSERT INTO bench_plain (target_id, profile_id, launched_by)
		 VALUES (gen_random_uuid(), '$p', current_user) RETURNING id;\n");
	my ($launch, $insert) = (0, 0);
	for (1 .. $rounds)
	{
		$insert += pgbench_tps($node, "$dir/insert.sql", $seconds);
		$launch += pgbench_tps($node, "$dir/launch.sql", $seconds);
	}
	my ($lt, $it) = map { $_ / ($rounds * $seconds) } $launch, $insert;
	row('enqueue cost',
		sprintf('launch %.0f tps, INSERT %.0f tps: %.2fx (pgbench -c 2, %d x %d s each)',
			$lt, $it, $lt / $it, $rounds, $seconds),
		'>= 0.8x', $lt / $it >= 0.8);
	$node->stop;
	$sim->stop;
}

# ---- the due-work tick at scale --------------------------------------------

sub tick_cost
{
	my ($node, $sim, $label, $ticks) = @_;
	# pg_stat_statements shows constants as $n: the statements are told
	# apart by their shape (claim launches, claim other work, next due).
	$node->safe_psql('postgres', 'SELECT pg_stat_statements_reset()');
	$node->safe_psql('postgres', launch_script("tick-$label", $ticks, 0.02, 0));
	wait_for($node, "SELECT count(*) = 0 FROM invicti_scans WHERE worker_state <> 'done'",
		"$label: the launched scans finished", 300);
	my $rows = $node->safe_psql('postgres', q{
		SELECT calls, total_exec_time + total_plan_time, query FROM pg_stat_statements
		WHERE query ~ 'min\(next_attempt_at\)|SKIP LOCKED|ORDER BY worker_state <>'});
	my ($ms, $lookup_ms, $turns, @each) = (0, 0, 0);
	for (split /\n/, $rows)
	{
		my ($calls, $time, $query) = split /\|/, $_, 3;
		$ms += $time;
		# the launch claim also writes the claimed rows ('sending')
		$lookup_ms += $time unless $query =~ /SKIP LOCKED/;
		$turns = $calls if $query =~ /min\(next_attempt_at\)/;
		$query =~ s/\s+/ /g;
		push @each, sprintf('%dx %.1f us: %.50s', $calls, 1000 * $time / $calls, $query);
	}
	die "$label: no tick recorded\n" unless $turns;
	diag("  $label: $_") for @each;
	return (1000 * $ms / $turns, $turns, 1000 * $lookup_ms / $turns);
}

sub bench_tick
{
	my ($ticks, $small, $big) = (300, 10_000, 1_000_000);
	my $sim = start_simulator(targets => [ map {
				({ target_id => target_uuid("tick-small-$_"), outcome => 'failed' },
				 { target_id => target_uuid("tick-big-$_"), outcome => 'failed' })
			  } 1 .. $ticks ]);
	my $node = bench_node('tick', $sim, %pgss_settings,
		'invicti_scan.poll_interval' => "'1s'");
	$node->safe_psql('postgres', 'CREATE EXTENSION pg_stat_statements');
	insert_history($node, $small);
	my ($us_small, $n_small, $look_small) = tick_cost($node, $sim, 'small', $ticks);
	insert_history($node, $big - $small - $ticks);
	my ($us_big, $n_big, $look_big) = tick_cost($node, $sim, 'big', $ticks);
	row('scale of the due-work tick',
		sprintf('%.0f us per tick at 10 k rows, %.0f us at 1 M: %.2fx (%d and %d ticks)',
			$us_small, $us_big, $us_big / $us_small, $n_small, $n_big),
		'<= 1.2x', $us_big / $us_small <= 1.2,
		sprintf('without writing the claimed launch rows: %.1f us and %.1f us, %.2fx',
			$look_small, $look_big, $look_big / $look_small));
	$node->stop;
	$sim->stop;
}

# ---- polling by list ---------------------------------------------------------

# Status requests (list pages, GETs of one scan) in a log slice.
sub status_requests
{
	my @log = @_;
	my $pages = grep { $_->{method} eq 'GET' && $_->{path} eq '/api/v1/scans' } @log;
	my $gets = grep { $_->{method} eq 'GET' && $_->{path} =~ m{^/api/v1/scans/[^/]+$} } @log;
	return ($pages, $gets);
}

# $n running scans, polled by list every $interval s: requests per scan per
# interval, the longest gap between two refreshes of one scan, and (with
# $restart) the worker's memory and how soon polling resumes after a restart.
sub polling_run
{
	my ($n, $interval, $restart) = @_;
	my @targets = map { target_uuid("poll-$n-$_") } 1 .. $n;
	my $sim = start_simulator(
		targets => [ map { { target_id => $_, outcome => 'running' } } @targets ]);
	my $node = bench_node("polling_$n", $sim,
		'invicti_scan.max_concurrent_requests' => 64,
		'invicti_scan.poll_interval' => "'${interval}s'");
	for (my $i = 0; $i < $n; $i += 1000)
	{
		my $end = $i + 999 < $n - 1 ? $i + 999 : $n - 1;
		launch_many($node, @targets[ $i .. $end ]);
	}
	wait_for($node, "SELECT count(*) = $n FROM invicti_scans WHERE status = 'processing' AND progress = 49",
		"$n scans running", 900);
	sleep 2 * $interval;    # every first poll is over; the scans are on the rounds
	my $seq = $sim->next_seq;
	my $t0 = time();
	my $rounds = 5;
	sleep $rounds * $interval;
	my $t1 = time();
	my @log = $sim->log_entries($seq);
	my ($pages, $gets) = status_requests(@log);
	my $per_scan = ($pages + $gets) / ($n * ($t1 - $t0) / $interval);
	my $times = refresh_times($t0, $t1, @log);
	my $max_gap = 0;
	for my $id (keys %$times)
	{
		my @t = sort { $a <=> $b } @{ $times->{$id} };
		for my $i (1 .. $#t)
		{
			$max_gap = $t[$i] - $t[ $i - 1 ] if $t[$i] - $t[ $i - 1 ] > $max_gap;
		}
	}
	my %r = (per_scan => $per_scan, pages => $pages, gets => $gets, max_gap => $max_gap,
		refreshed => scalar(keys %$times), seconds => $t1 - $t0);
	if ($restart)
	{
		my $pid = worker_pid($node);
		$r{memory} = memory_of($pid);
		$seq = $sim->next_seq;
		$node->restart;
		# from the moment the new postmaster started (pg_ctl returns later)
		my $ready = $node->safe_psql('postgres',
			'SELECT extract(epoch FROM pg_postmaster_start_time())');
		wait_until(sub { grep { $_->{method} eq 'GET' } $sim->log_entries($seq) },
			"$n running scans: polling resumes after a restart", 60);
		my ($first) = grep { $_->{method} eq 'GET' } $sim->log_entries($seq);
		$r{resume} = $first->{time} - $ready;
		# and every scan is refreshed by the first round
		wait_until(sub { scalar(keys %{ refresh_times($ready, 9e9, $sim->log_entries($seq)) }) >= $n },
			"$n running scans: all refreshed after the restart", 120);
		my $after = refresh_times($ready, 9e9, $sim->log_entries($seq));
		$r{all_refreshed} = max(map { min(@$_) } values %$after) - $ready;
	}
	$node->stop;
	$sim->stop;
	return \%r;
}

sub bench_polling
{
	my $interval = 5;
	my %run;
	$run{$_} = polling_run($_, $interval, $_ == 10_000) for (100, 1000, 10_000);
	row('status requests per running scan per poll interval (by list; scan by scan: 1.0)',
		join(', ', map { sprintf('%s: %.4f (%d pages, %d single)', $_, $run{$_}{per_scan},
					$run{$_}{pages}, $run{$_}{gets}) } sort { $a <=> $b } keys %run),
		'<= 0.02 at 1,000 and 10,000',
		$run{1000}{per_scan} <= 0.02 && $run{10_000}{per_scan} <= 0.02);
	my $gap = max(map { $run{$_}{max_gap} } keys %run) / $interval;
	row('longest gap between two refreshes of a row',
		sprintf('%.2fx poll_interval (%s)', $gap,
			join(', ', map { sprintf('%s: %.1f s', $_, $run{$_}{max_gap}) } sort { $a <=> $b } keys %run)),
		'<= 1.5x', $gap <= 1.5);
	my $m = $run{10_000}{memory};
	row('worker memory at 10,000 running scans',
		sprintf('RssAnon %d kB, VmRSS %d kB', $m->{RssAnon}, $m->{VmRSS}),
		'RssAnon <= 20 MB', $m->{RssAnon} <= 20 * 1024);
	row('polling resumes after a restart, 10,000 running scans',
		sprintf('first request %.2f s after the postmaster started; every scan refreshed after %.1f s',
			$run{10_000}{resume}, $run{10_000}{all_refreshed}),
		'<= 2 s', $run{10_000}{resume} <= 2);
}

# ---- CPU per recorded change ----------------------------------------------------

sub writes_run
{
	my ($method, $n) = @_;
	my @targets = map { target_uuid("write-$method-$_") } 1 .. $n;
	# processing runs 0 -> 99 over 10 * duration_scale time units of 0.1 s:
	# 1% a second, so every refresh a second apart sees new progress
	my $sim = start_simulator(time_scale => 0.1,
		targets => [ map { { target_id => $_, outcome => 'completed', duration_scale => 100 } } @targets ]);
	my $node = bench_node("writes_$method", $sim,
		'invicti_scan.max_concurrent_requests' => 64,
		'invicti_scan.poll_method' => $method,
		'invicti_scan.poll_interval' => "'1s'");
	my $pid = worker_pid($node);
	launch_many($node, @targets);
	wait_for($node, "SELECT count(*) = $n FROM invicti_scans WHERE status = 'processing' AND progress >= 5",
		"$method: $n scans processing", 300);
	my $updates = sub {
		$node->safe_psql('postgres', 'SELECT pg_stat_clear_snapshot()');
		return $node->safe_psql('postgres',
			"SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'invicti_scans'");
	};
	sleep 2;
	my ($c1, $u1, $r1) = (cpu_of($pid), $updates->(), sim_total($sim));
	sleep 30;
	my ($c2, $u2, $r2) = (cpu_of($pid), $updates->(), sim_total($sim));
	my ($ms) = cpu_delta_ms($c1, $c2);
	$node->stop;
	$sim->stop;
	return { us => 1000 * $ms / ($u2 - $u1 || 1), changes => $u2 - $u1, requests => $r2 - $r1 };
}

sub bench_writes
{
	my %run;
	$run{$_} = writes_run($_, 1000) for qw(list scan);
	row('worker CPU per recorded change (every refresh changes every row)',
		join(', ', map { sprintf('%s: %.0f us (%d changes, %d requests in 30 s)', $_, $run{$_}{us},
					$run{$_}{changes}, $run{$_}{requests}) } qw(list scan)),
		'<= 100 us', $run{list}{us} <= 100);
}

# ---- the adaptive rate limit ----------------------------------------------------

# $n scans through a simulator that answers a random share of every request
# 429 (Retry-After: 1, a token others share), with the adaptive limit ($mode
# "adaptive", the default) or without any (budget off): how long until every
# scan has run and been imported, and the requests the server accepted.
sub rate429_run
{
	my ($share, $mode, $n) = @_;
	my @targets = map { target_uuid("r429-$share-$mode-$_") } 1 .. $n;
	my $sim = start_simulator(time_scale => 0.1,
		targets => [ map { { target_id => $_, outcome => 'completed', duration_scale => 2,
					severity_counts => { low => 150 } } } @targets ]);
	$sim->faults({ match => { path => '^/api/' }, fault => 'status', status => 429,
			retry_after => 1, probability => $share / 100 }) if $share;
	my $node = bench_node("r429_${share}_$mode", $sim,
		'invicti_scan.poll_interval' => "'2s'",
		'invicti_scan.adaptive_rate_limit' => $mode eq 'adaptive' ? 'on' : 'off');
	my $seq = $sim->next_seq;
	my $t0 = time();
	my @ids = launch_many($node, @targets);
	my $deadline = $t0 + 300;
	my $done = 0;
	while (time() < $deadline)
	{
		$done = $node->safe_psql('postgres',
			"SELECT count(*) FROM invicti_scans WHERE worker_state = 'done' AND status = 'completed'");
		last if $done == $n;
		sleep 0.5;
	}
	my $elapsed = time() - $t0;
	my @log = grep { $_->{path} =~ m{^/api/} } $sim->log_entries($seq);
	my $refused = grep { $_->{status} == 429 } @log;
	my $posts = grep { $_->{method} eq 'POST' && $_->{status} == 201 } @log;
	$node->stop;
	$sim->stop;
	return { elapsed => $elapsed, done => $done, requests => scalar(@log), refused => $refused,
		accepted_per_min => (@log - $refused) * 60 / $elapsed, created => $posts };
}

sub bench_rate429
{
	my $n = 60;
	my (%r, @parts);
	for my $share (0, 5, 15, 30)
	{
		$r{$share}{$_} = rate429_run($share, $_, $n) for qw(adaptive off);
		my ($a, $o) = @{ $r{$share} }{qw(adaptive off)};
		push @parts, sprintf('%d%%: %.0f s vs %.0f s (%.2fx), %d/%d done, %.0f vs %.0f accepted/min, %d POSTs created',
			$share, $a->{elapsed}, $o->{elapsed}, $o->{elapsed} / $a->{elapsed}, $a->{done}, $n,
			$a->{accepted_per_min}, $o->{accepted_per_min}, $a->{created});
	}
	my ($a, $o) = @{ $r{15} }{qw(adaptive off)};
	row("random 429s (Retry-After: 1): $n scans launched, polled and imported, adaptive vs no limit",
		join('; ', @parts), 'at 15%: >= 0.7x the throughput of no limit, every scan done',
		$a->{done} == $n && $o->{elapsed} / $a->{elapsed} >= 0.7);
}

# One scan with $findings findings, imported through a simulator that
# allows $limit requests a minute (0: no limit), with ($mode) the adaptive
# limit or none: rows a second, pages accepted a minute, 429s, the worker's
# CPU per finding.
sub import_run
{
	my ($findings, $limit, $mode, $label, %variants) = @_;
	my $target = target_uuid("import-$findings-$limit-$mode-$label");
	my $sim = start_simulator(time_scale => 0.01,
		targets => [ { target_id => $target, outcome => 'completed',
				severity_counts => { low => $findings } } ]);
	my $node = bench_node("import_${limit}_${mode}_$label", $sim,
		'invicti_scan.adaptive_rate_limit' => $mode eq 'adaptive' ? 'on' : 'off');
	my $pid = worker_pid($node);
	my $id = launch($node, $target);
	# every request from the import on counts against the server's limit
	wait_for($node, "SELECT worker_state = 'import' OR findings_imported_at IS NOT NULL
		FROM invicti_scans WHERE id = $id", 'the scan ended', 120);
	$sim->config(rate_limit => $limit, %variants) if $limit;
	my $seq = $sim->next_seq;
	my ($c0, $t0) = (cpu_of($pid), time());
	wait_for($node, "SELECT findings_imported_at IS NOT NULL FROM invicti_scans WHERE id = $id",
		"$findings findings imported", 900);
	my ($c1, $t1) = (cpu_of($pid), time());
	my $rows = $node->safe_psql('postgres',
		"SELECT count(*) FROM invicti_vulnerabilities WHERE scan_row_id = $id");
	my @log = grep { $_->{path} =~ m{/vulnerabilities$} } $sim->log_entries($seq);
	my $refused = grep { $_->{status} == 429 } @log;
	my ($ms) = cpu_delta_ms($c0, $c1);
	$node->stop;
	$sim->stop;
	return { seconds => $t1 - $t0, rows => $rows, rows_per_s => $rows / ($t1 - $t0),
		pages => scalar(@log) - $refused, refused => $refused, requests => scalar(@log),
		pages_per_min => (@log - $refused) * 60 / ($t1 - $t0),
		us_per_row => 1000 * $ms / ($rows || 1) };
}

sub bench_limit
{
	my $findings = 30_000;
	my $off = import_run($findings, 0, 'off', 'free');
	my $adaptive = import_run($findings, 0, 'adaptive', 'free');
	row("import of $findings findings, no server limit: adaptive vs no limit",
		sprintf('%.0f vs %.0f rows/s (%.2fx), %d rows each', $adaptive->{rows_per_s}, $off->{rows_per_s},
			$adaptive->{rows_per_s} / $off->{rows_per_s}, $adaptive->{rows}),
		'>= 0.9x', $adaptive->{rows_per_s} >= 0.9 * $off->{rows_per_s});
	my $n = 200;
	my @parts;
	my $met = 1;
	for my $case ([ 'token bucket', 'bucket', rate_limit_algorithm => 'token_bucket' ],
		[ 'fixed window', 'window', rate_limit_algorithm => 'fixed_window' ],
		[ 'fixed window, X-RateLimit headers', 'headers', rate_limit_algorithm => 'fixed_window',
			rate_limit_headers => 'x-ratelimit' ])
	{
		my ($name, $label, %variants) = @$case;
		my $r = import_run($findings, $n, 'adaptive', $label, %variants);
		my $goodput = $r->{pages_per_min} / $n;
		my $share = $r->{refused} / ($r->{requests} || 1);
		$met &&= $goodput >= 0.6 && $share < 0.2 && $r->{rows} == $findings;
		push @parts, sprintf('%s: %.0f pages/min accepted (%.0f%% of %d), 429s %.1f%% of %d requests, %.0f s',
			$name, $r->{pages_per_min}, 100 * $goodput, $n, 100 * $share, $r->{requests}, $r->{seconds});
	}
	row("import of $findings findings against a server limit of $n requests/min",
		join('; ', @parts), 'goodput >= 60% of the limit, 429s < 20% of requests', $met);
}

# ---- the API economy over whole lifecycles ---------------------------------------

# $n short scans launched together, polled at the default poll_method
# (list) every $interval s, through to their import: status requests (list
# pages, GETs of one scan) per running scan per interval, counting each
# scan's running time from its launch to its end in the simulator.
sub bench_economy
{
	my ($n, $interval) = (300, 5);
	my @targets = map { target_uuid("econ-$_") } 1 .. $n;
	# a scan runs 12 units of 1.5 s: 18 s, about 4 intervals
	my $sim = start_simulator(time_scale => 1.5,
		targets => [ map { { target_id => $_, outcome => 'completed' } } @targets ]);
	my $node = bench_node('economy', $sim,
		'invicti_scan.poll_interval' => "'${interval}s'");
	my $seq = $sim->next_seq;
	launch_many($node, @targets);
	wait_for($node, "SELECT count(*) = $n FROM invicti_scans WHERE worker_state = 'done'",
		"$n short scans done", 600);
	my @log = $sim->log_entries($seq);
	my ($pages, $gets) = status_requests(@log);
	my $scans = $sim->scans;
	my $running = 0;
	for my $s (values %$scans)
	{
		next unless $s->{end_date};
		$running += (iso_epoch($s->{end_date}) - iso_epoch($s->{created_at})) / $interval;
	}
	my $per = ($pages + $gets) / ($running || 1);
	row("status requests per running scan per poll interval, $n short scans, launch to import",
		sprintf('%.3f (%d list pages, %d single GETs over %.0f scan-intervals)', $per, $pages, $gets, $running),
		'<= 0.05', $per <= 0.05);
	$node->stop;
	$sim->stop;
}

sub iso_epoch
{
	my ($text) = @_;
	require Time::Local;
	my ($y, $mo, $d, $h, $mi, $s, $frac) =
	  $text =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)(\.\d+)?/ or die "not a date: $text";
	return Time::Local::timegm($s, $mi, $h, $d, $mo - 1, $y) + ($frac // 0);
}

# ---- run and report ----------------------------------------------------------

bench_latency() if wanted('latency');
bench_concurrency() if wanted('concurrency');
bench_cpu() if wanted('cpu');
bench_idle() if wanted('idle');
bench_enqueue() if wanted('enqueue');
bench_tick() if wanted('tick');
bench_polling() if wanted('polling');
bench_writes() if wanted('writes');
bench_rate429() if wanted('rate429');
bench_limit() if wanted('limit');
bench_economy() if wanted('economy');

my @w = (0, 0, 0);
for my $r ([ 'figure', 'measured', 'target', '' ], @table)
{
	$w[$_] = max($w[$_], length $r->[$_]) for 0 .. 2;
}
my $fmt = "%-$w[0]s | %-$w[1]s | %-$w[2]s | %s";
diag('');
diag(sprintf($fmt, 'figure', 'measured', 'target', 'verdict'));
diag(join('-+-', map { '-' x $_ } @w, 8));
diag(sprintf($fmt, @$_)) for @table;
done_testing();
