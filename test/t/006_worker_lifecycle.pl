# The worker's life and its settings: without shared_preload_libraries the
# extension warns and only queues; the worker waits quietly for CREATE
# EXTENSION, survives DROP and re-CREATE, refuses launches from another
# database, applies poll_interval, max_concurrent_requests and base_url on
# reload without restarting, and comes back after SIGTERM without losing
# a row.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use InvictiTest;

my @parked = map { target_uuid("life-paused-$_") } 1 .. 10;
my $done = target_uuid('life-completed');
my $sim = start_simulator(
	targets => [
		(map { { target_id => $_, outcome => 'paused' } } @parked),
		{ target_id => $done, outcome => 'completed' },
	]);

my $WAITING = qr/LOG:  invicti_scan worker: extension "invicti_scan" is not installed in database "postgres"; waiting for CREATE EXTENSION/;
my $FOUND = qr/LOG:  invicti_scan worker: using extension invicti_scan \S+ in database "postgres"; (\d+) running scans to track/;
my $STARTED = qr/LOG:  invicti_scan worker started in database "postgres"/;

# Append settings and reload.
sub reconfigure
{
	my ($node, %settings) = @_;
	$node->append_conf('postgresql.conf',
		join('', map { "$_ = $settings{$_}\n" } sort keys %settings));
	$node->reload;
}

# GET requests of each polled scan, as lists of arrival times.
# When each scan was refreshed (a GET of it, or a list page with it).
sub poll_times { return refresh_times(@_) }

# Gaps between consecutive polls of the same scan.
sub poll_gaps
{
	my ($times) = @_;
	my @gaps;
	for my $list (values %$times)
	{
		my @s = sort { $a <=> $b } @$list;
		push @gaps, $s[$_] - $s[ $_ - 1 ] for 1 .. $#s;
	}
	return sort { $a <=> $b } @gaps;
}

sub median { my @s = sort { $a <=> $b } @_; return @s ? $s[ int(@s / 2) ] : 0 }

# Most requests the simulator was serving at once during [from, to], from
# each entry's arrival time and duration (a millisecond is shaved off both
# ends so that one request ending as the next begins is not an overlap).
sub max_in_flight
{
	my ($from, $to, @entries) = @_;
	my @ev;
	for (@entries)
	{
		my ($s, $f) = ($_->{time}, $_->{time} + $_->{duration_ms} / 1000);
		next if $f < $from || $s > $to;
		push @ev, [ $s + 0.001, 1 ], [ $f - 0.001, -1 ];
	}
	my ($n, $max) = (0, 0);
	for (sort { $a->[0] <=> $b->[0] || $a->[1] <=> $b->[1] } @ev)
	{
		$n += $_->[1];
		$max = $n if $n > $max;
	}
	return $max;
}

# --- the preloaded node starts before its extension exists ----------------
my $node = new_node('life', sim => $sim, no_extension => 1,
	settings => { restart_after_crash => 'on' });
$node->wait_for_log($WAITING);
my $waiting_since = time();
ok(log_contains($node, $WAITING), 'before CREATE EXTENSION the worker says it waits');
my $pid = worker_pid($node);
like($pid, qr/^\d+$/, 'the worker runs while the extension is missing');

# --- meanwhile: a node without the library preloaded -----------------------
{
	my $plain = new_node('plain', sim => $sim, no_extension => 1,
		settings => { shared_preload_libraries => "''" });
	my ($rc, $out, $err) = $plain->psql('postgres', 'CREATE EXTENSION invicti_scan');
	is($rc, 0, 'not preloaded: CREATE EXTENSION works');
	like($err, qr/WARNING:  invicti_scan is not loaded through shared_preload_libraries/,
		'not preloaded: CREATE EXTENSION warns');
	like($err, qr/HINT:  Add invicti_scan to shared_preload_libraries in postgresql.conf and restart the server/,
		'not preloaded: the warning has a hint');
	# (psql, not launch(): a failure here must not end the whole test)
	($rc, my $id, $err) = $plain->psql('postgres',
		"SELECT invicti_launch_scan('$done', '" . PROFILE_HIGH_RISK . "')");
	is($rc, 0, 'not preloaded: launching works') or diag($err);
	my $row = $rc == 0 ? scan_row($plain, $id) : {};
	is_deeply([ $row->{status}, $row->{worker_state}, $row->{scan_id} ],
		[ 'pending', 'launch', undef ], 'not preloaded: a launch still queues a pending row');
	is(worker_pid($plain), '', 'not preloaded: no worker');
	# what needs the worker's shared memory says so, in one wording
	for my $call ("invicti_wait_scan($id, '1 second')", 'invicti_scan_worker_stats()')
	{
		($rc, my $out, $err) = $plain->psql('postgres', "SELECT $call");
		like($err, qr/ERROR:  invicti_scan is not loaded through shared_preload_libraries/,
			"not preloaded: $call is refused, saying why");
	}
	$plain->stop;
}

# --- meanwhile: another database than invicti_scan.database_name ----------
$node->safe_psql('postgres', 'CREATE DATABASE other');
{
	my ($rc, $out, $err) = $node->psql('other', 'CREATE EXTENSION invicti_scan');
	is($rc, 0, 'other database: CREATE EXTENSION works');
	like($err, qr/WARNING:  the invicti_scan worker runs in database "postgres", not in "other"/,
		'other database: CREATE EXTENSION warns, naming both databases');
	($rc, $out, $err) = $node->psql('other',
		"SELECT invicti_launch_scan('$done', '" . PROFILE_HIGH_RISK . "')");
	isnt($rc, 0, 'other database: launching fails');
	like($err, qr/ERROR:  the invicti_scan worker does not run in database "other"/,
		'other database: the error names this database');
	like($err, qr/DETAIL:  invicti_scan.database_name is "postgres"/,
		'other database: ... and the worker\'s');
	($rc, $out) = $node->psql('other', 'SELECT count(*) FROM invicti_scans');
	is($out, '0', 'other database: no row was queued');
}

# The wait is logged once, not once per check (the worker rechecks every
# 10 s, and CREATE EXTENSION in "other" woke it too).
sleep(0.2) while time() < $waiting_since + 11;
is(count_in_log($node, $WAITING), 1, 'one "waiting" line after 11 s');
is(count_in_log($node, qr/(ERROR|WARNING):  invicti_scan worker/), 0,
	'the waiting worker logs no error');
is(worker_pid($node), $pid, 'the waiting worker is the same process');
is(scalar($sim->log_entries), 0, 'the waiting worker sent nothing');

# --- CREATE EXTENSION is picked up at once ---------------------------------
my $offset = -s $node->logfile;
$node->safe_psql('postgres', 'CREATE EXTENSION invicti_scan');
my $first = launch($node, $done);
wait_for($node,
	"SELECT status = 'completed' FROM invicti_scans WHERE id = $first",
	'a launch right after CREATE EXTENSION is sent and completes', 30);
my ($n) = slurp_file($node->logfile, $offset) =~ $FOUND;
is($n, 0, 'the worker logs that it found the extension');
my $parked_one = launch($node, $parked[0]);
wait_for($node,
	"SELECT status = 'paused' AND worker_state = 'poll' FROM invicti_scans WHERE id = $parked_one",
	'a parked scan is polled');

# --- DROP EXTENSION: the worker waits quietly again ------------------------
$offset = -s $node->logfile;
$node->safe_psql('postgres', 'DROP EXTENSION invicti_scan');
$node->wait_for_log($WAITING, $offset);
my $quiet_since = time() + 1;
ok(log_contains($node, $WAITING, $offset), 'after DROP EXTENSION the worker says it waits');
sleep 4;
is(count_in_log($node, $WAITING, $offset), 1, 'after DROP: one "waiting" line');
is(count_in_log($node, qr/ERROR|PANIC|TRAP|exited with exit code|terminated by signal/, $offset), 0,
	'after DROP: no error, no exit');
is(worker_pid($node), $pid, 'after DROP: the same worker process');
is(scalar(grep { $_->{time} >= $quiet_since } $sim->log_entries), 0,
	'after DROP: the scans of the dropped table are no longer polled');

# --- CREATE EXTENSION again ------------------------------------------------
$offset = -s $node->logfile;
my $t = time();
$node->safe_psql('postgres', 'CREATE EXTENSION invicti_scan');
# (CREATE EXTENSION wakes the worker; without that it would look again
# within 10 s: the time is shown, not asserted)
$node->wait_for_log($FOUND, $offset);
ok(log_contains($node, $FOUND, $offset),
	sprintf('re-created: the worker logs that it found it (%.1f s)', time() - $t));
my $again = launch($node, $done);
wait_for($node,
	"SELECT status = 'completed' FROM invicti_scans WHERE id = $again",
	're-created: a launch is sent and completes', 30);
is(worker_pid($node), $pid, 're-created: still the same worker process');

# --- poll_interval on reload ------------------------------------------------
my @ids = launch_many($node, @parked);
my $in = join ',', @ids;
wait_for($node,
	"SELECT bool_and(status = 'paused' AND worker_state = 'poll') FROM invicti_scans WHERE id IN ($in)",
	'ten parked scans are polled');
my %scan_of = split /[|\n]/, $node->safe_psql('postgres',
	"SELECT id, scan_id FROM invicti_scans WHERE id IN ($in)");

$t = time();
sleep 5;
my @before = poll_gaps(poll_times($t, time(), $sim->log_entries));
my $before = median(@before);
cmp_ok(scalar(@before), '>=', 10, 'poll_interval 1s: polls measured');

reconfigure($node, 'invicti_scan.poll_interval' => "'3s'");
$t = time() + 2;    # the reload has been applied by then
sleep 10;
my @after = poll_gaps(poll_times($t, time(), $sim->log_entries));
my $after = median(@after);
cmp_ok(scalar(@after), '>=', 10, 'poll_interval 3s: polls measured');
cmp_ok($after[0], '>=', 2.8, 'poll_interval 3s: no scan polled sooner than 3 s after its last poll');
cmp_ok($after / $before, '>=', 1.5,
	sprintf('poll_interval 1s -> 3s: median gap between polls %.2f s -> %.2f s', $before, $after));
is(worker_pid($node), $pid, 'poll_interval reloaded: same worker process');

# --- max_concurrent_requests on reload ---------------------------------------
# Every poll takes a second; ten scans due every second, polled scan by
# scan, want ten requests in flight.
$sim->faults({ match => { method => 'GET', path => '^/api/v1/scans/[0-9a-f-]+$' },
	fault => 'latency', ms => 1000 });
my %max;
for my $limit (2, 5)
{
	reconfigure($node, 'invicti_scan.poll_interval' => "'1s'",
		'invicti_scan.poll_method' => "'scan'",
		'invicti_scan.max_concurrent_requests' => $limit);
	my $from = time() + 3;    # requests sent under the old limit are over
	my $to = $from + 5;
	sleep 0.2 while time() < $to + 2;    # and those of the window are logged
	$max{$limit} = max_in_flight($from, $to, $sim->log_entries);
	cmp_ok($max{$limit}, '<=', $limit,
		"max_concurrent_requests $limit: at most $limit requests at once (saw $max{$limit})");
	is(worker_pid($node), $pid, "max_concurrent_requests $limit: same worker process");
}
cmp_ok($max{2}, '>=', 2, 'max_concurrent_requests 2: both slots are used');
cmp_ok($max{5}, '>=', 3, 'max_concurrent_requests 5: the raised limit is used at once');
$sim->faults();

# --- per-request lines at debug1 ----------------------------------------------
$offset = -s $node->logfile;
reconfigure($node, log_min_messages => 'debug1');
my $request_line =
  qr{DEBUG:  invicti_scan: GET \Q${\ $sim->api_url }\E/api/v1/scans/[0-9a-f-]{36} -> 200 in \d+ ms};
$node->wait_for_log($request_line, $offset);
ok(log_contains($node, $request_line, $offset), 'log_min_messages = debug1: one line per request');
reconfigure($node, log_min_messages => 'warning');

# --- SIGTERM: the worker exits, the postmaster starts it again -------------
$offset = -s $node->logfile;
my $rows = $node->safe_psql('postgres', 'SELECT count(*) FROM invicti_scans');
kill 'TERM', $pid;
wait_for($node,
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid",
	'SIGTERM: the worker exits', 30);
ok(log_contains($node, qr/terminating background worker "invicti_scan worker" due to administrator command/, $offset),
	'SIGTERM: the exit is logged');
my $while_down = launch($node, $done);
wait_for($node,
	"SELECT count(*) = 1 FROM pg_stat_activity
	 WHERE backend_type = 'invicti_scan worker' AND pid <> $pid",
	'SIGTERM: the postmaster starts a new worker', 60);
my $new_pid = worker_pid($node);
my $restarted_at = time();
wait_for($node,
	"SELECT status = 'completed' FROM invicti_scans WHERE id = $while_down",
	'SIGTERM: a scan queued while the worker was down is sent');
my ($tracked) = slurp_file($node->logfile, $offset) =~ $FOUND;
is($tracked, scalar(@parked), 'SIGTERM: the new worker takes over every parked scan');
wait_until(
	sub {
		my $times = poll_times($restarted_at, time() + 60, $sim->log_entries);
		return !grep { !$times->{ $scan_of{$_} } } @ids;
	},
	'SIGTERM: every parked scan is polled by the new worker');
is($node->safe_psql('postgres', 'SELECT count(*) FROM invicti_scans'), $rows + 1,
	'SIGTERM: no row lost');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM invicti_scans WHERE id IN ($in) AND worker_state = 'poll'"),
	scalar(@ids), 'SIGTERM: every parked scan is still tracked');
is(count_in_log($node, $STARTED), 2, 'each worker start is logged');
ok(!log_contains($node, qr/terminated by signal|all server processes terminated/, $offset),
	'SIGTERM: no crash, no server reset');

# --- base_url on reload --------------------------------------------------------
# Finish the parked scans first: the second server does not know them.
for my $id (@ids)
{
	$sim->control('POST', "/_sim/scans/$scan_of{$id}/force",
		{ status => 'completed', progress => 100 });
}
wait_for($node,
	"SELECT bool_and(worker_state = 'done') FROM invicti_scans WHERE id IN ($in)",
	'the parked scans are finished');
my $sim2 = start_simulator(targets => [ { target_id => $done, outcome => 'completed' } ]);
$offset = -s $node->logfile;
my $switched_at = time();
reconfigure($node, 'invicti_scan.base_url' => "'" . $sim2->api_url . "'");
$node->wait_for_log(qr/LOG:  invicti_scan worker: API settings changed/, $offset);
ok(log_contains($node, qr/LOG:  invicti_scan worker: API settings changed/, $offset),
	'base_url reloaded: the worker logs that API settings changed');
my $moved = launch($node, $done);
wait_for($node,
	"SELECT status = 'completed' FROM invicti_scans WHERE id = $moved",
	'base_url reloaded: a new launch completes');
my $moved_scan = scan_row($node, $moved)->{scan_id};
ok($sim2->scans->{$moved_scan}, 'base_url reloaded: the launch went to the new server');
is(scalar(grep { $_->{time} >= $switched_at && $_->{method} eq 'POST' } $sim->log_entries),
	0, 'base_url reloaded: the old server got no launch');
is(worker_pid($node), $new_pid, 'base_url reloaded: same worker process');
$sim2->stop;

done_testing();
