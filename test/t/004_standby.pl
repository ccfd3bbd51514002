# A standby does nothing until promoted; after promotion, the new primary
# picks up every active scan without relaunching any: parked scans keep
# being polled, a launch that was in flight when the primary went away is
# reconciled (not resent), and a launch still queued is sent exactly once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use InvictiTest;

my @paused = map { target_uuid("standby-paused-$_") } 1 .. 3;
my @stuck = map { target_uuid("standby-stuck-$_") } 1 .. 2;
my @done = map { target_uuid("standby-done-$_") } 1 .. 2;
my $inflight_target = target_uuid('standby-inflight');
my $pending_target = target_uuid('standby-pending');
my $sim = start_simulator(
	targets => [
		(map { { target_id => $_, outcome => 'paused' } } @paused),
		(map { { target_id => $_, outcome => 'stuck_unknown' } } @stuck),
		(map { { target_id => $_, outcome => 'completed' } }
			@done, $inflight_target, $pending_target),
	]);

# A long request timeout on the primary, so that a launch can still be in
# flight when the primary stops (see below); the standby gets a short one.
my $primary = new_node('primary', sim => $sim, allows_streaming => 1,
	settings => { 'invicti_scan.request_timeout' => "'300s'" });

my @parked_ids = launch_many($primary, @paused, @stuck);
my @done_ids = launch_many($primary, @done);
my $parked_in = join ',', @parked_ids;
my $done_in = join ',', @done_ids;
wait_for($primary,
	"SELECT bool_and(worker_state = 'poll' AND status IN ('paused', 'under_review'))
	 FROM invicti_scans WHERE id IN ($parked_in)",
	'primary: parked scans are running and polled');
wait_for($primary,
	"SELECT bool_and(worker_state = 'done' AND status = 'completed')
	 FROM invicti_scans WHERE id IN ($done_in)",
	'primary: the other scans completed');
my %scan_of = split /[|\n]/, $primary->safe_psql('postgres',
	'SELECT id, scan_id FROM invicti_scans');

# --- a streaming standby with the same configuration ----------------------
$primary->backup('bkp');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'bkp', has_streaming => 1);
$standby->append_conf('postgresql.conf', "invicti_scan.request_timeout = '3s'\n");
$standby->start;
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't',
	'standby is in recovery');
like($standby->safe_psql('postgres', 'SHOW invicti_scan.base_url'),
	qr/^\Q${\ $sim->api_url }\E$/, 'standby points at the same simulator');
like($standby->safe_psql('postgres', 'SHOW shared_preload_libraries'),
	qr/invicti_scan/, 'standby preloads the library');
is(worker_pid($standby), '', 'standby: no invicti_scan worker in pg_stat_activity');

# --- a launch in flight: it reached the server, its answer never came back --
$sim->faults({ match => { method => 'POST', path => '^/api/v1/scans$' },
	fault => 'latency', ms => 120000, when => 'after' });
my $inflight = launch($primary, $inflight_target);
my $inflight_scan = wait_until(
	sub {
		my ($s) = grep { $_->{target_id} eq $inflight_target } values %{ $sim->scans };
		return $s ? $s->{scan_id} : undef;
	},
	'primary: the in-flight launch created a scan on the server');
is(scan_row($primary, $inflight)->{worker_state}, 'sending',
	'primary: that launch is still waiting for its answer');

# --- a launch the primary never sends --------------------------------------
# With base_url unset the primary's worker sends nothing at all (neither
# launches nor polls), so the queued launch stays untouched, and from now
# on any request the simulator sees can only come from the standby.
my $offset = -s $primary->logfile;
$primary->append_conf('postgresql.conf', "invicti_scan.base_url = ''\n");
$primary->reload;
$primary->wait_for_log(qr/not sending requests: invicti_scan\.base_url is not set/, $offset);
ok(log_contains($primary, qr/not sending requests: invicti_scan\.base_url is not set/, $offset),
	'primary: stopped sending after base_url was unset');
sleep 1;    # let any poll sent just before the reload arrive
my $quiet_since = time();
my $pending = launch($primary, $pending_target);
$primary->wait_for_catchup($standby);

my %on_standby = map { my ($id, $ws, $sid, $att) = split /\|/; ($id => [ $ws, $sid, $att ]) }
  split /\n/, $standby->safe_psql('postgres',
	'SELECT id, worker_state, scan_id, attempts FROM invicti_scans');
is_deeply($on_standby{$pending}, [ 'launch', '', 0 ],
	'standby: the queued launch replayed as pending, never attempted');
is($on_standby{$inflight}[0], 'sending', 'standby: the in-flight launch replayed as sending');
is(scalar(grep { $on_standby{$_}[0] eq 'poll' && $on_standby{$_}[1] eq $scan_of{$_} } @parked_ids),
	scalar(@parked_ids), 'standby: parked scans replayed with their scan ids');

# --- only the standby is left: it stays silent -----------------------------
$primary->stop;
sleep 4;
is(worker_pid($standby), '', 'standby alone: still no worker');
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't',
	'standby alone: still in recovery');
my @heard = grep { $_->{time} >= $quiet_since } $sim->log_entries;
is(scalar(@heard), 0, 'standby: not one request reached the simulator while it replayed')
  or diag(explain(\@heard));
ok(!log_contains($standby, qr/LOG:  invicti_scan worker|invicti_scan worker: /),
	'standby: the worker never started there');

# --- promotion --------------------------------------------------------------
$sim->faults();
my $log_offset = -s $standby->logfile;
my $promoted_at = time();
$standby->promote;
wait_for($standby,
	"SELECT NOT pg_is_in_recovery() AND count(*) = 1 FROM pg_stat_activity
	 WHERE backend_type = 'invicti_scan worker'",
	'promoted: the worker appears');
$standby->wait_for_log(
	qr/using extension invicti_scan \S+ in database "postgres"; (\d+) running scans to track/,
	$log_offset);
my ($tracked) = slurp_file($standby->logfile, $log_offset)
  =~ /(\d+) running scans to track/;
is($tracked, scalar(@parked_ids), 'promoted: the worker takes over every parked scan');

wait_for($standby,
	"SELECT status = 'completed' AND worker_state = 'done' FROM invicti_scans WHERE id = $pending",
	'promoted: the queued launch is sent and completes');
wait_for($standby,
	"SELECT status = 'completed' AND worker_state = 'done' FROM invicti_scans WHERE id = $inflight",
	'promoted: the in-flight launch is resolved');
is(scan_row($standby, $inflight)->{scan_id}, $inflight_scan,
	'promoted: the in-flight launch adopted the scan the old primary created');

# Every parked scan is refreshed again, twice, by the new primary (a GET of
# it, or a list page with it).
wait_until(
	sub {
		my $times = refresh_times($promoted_at, 9e9, $sim->log_entries);
		return !grep { scalar(@{ $times->{ $scan_of{$_} } // [] }) < 2 } @parked_ids;
	},
	'promoted: every parked scan is polled again (at least twice)', 60);
is($standby->safe_psql('postgres',
		"SELECT count(*) FROM invicti_scans
		 WHERE id IN ($parked_in) AND worker_state = 'poll' AND status IN ('paused', 'under_review')"),
	scalar(@parked_ids), 'promoted: parked scans are still tracked');

my @after = grep { $_->{time} >= $promoted_at } $sim->log_entries;
my $gets = { map { $_->{path} =~ m{^/api/v1/scans/([0-9a-f-]{36})$} ? ($1 => 1) : () }
	  grep { $_->{method} eq 'GET' } @after };
is(scalar(grep { $gets->{ $scan_of{$_} } } @done_ids), 0,
	'promoted: finished scans are not polled again');
my @posts = grep { $_->{method} eq 'POST' } @after;
is(scalar(@posts), 1, 'promoted: exactly one POST after promotion');
is($posts[0]{target_id}, $pending_target, 'promoted: that POST is the queued launch');
ok((grep { $_->{method} eq 'GET' && $_->{path} eq '/api/v1/scans'
		  && $_->{query} =~ /(^|&)q=target_id:\Q$inflight_target\E/ } @after),
	'promoted: the in-flight launch was reconciled with the scan list');

# Every scan on the server belongs to exactly one row, and every row with a
# scan id to exactly one scan.
my $sims = $sim->scans;
my %row_of_scan;
$row_of_scan{ $_->[1] }++
  for map { [ split /\|/ ] } split /\n/, $standby->safe_psql('postgres',
	'SELECT id, scan_id FROM invicti_scans WHERE scan_id IS NOT NULL');
is(scalar(keys %$sims), 2 + scalar(@parked_ids) + scalar(@done_ids),
	'one scan on the server per launch, none twice');
is(scalar(grep { ($row_of_scan{$_} // 0) == 1 } keys %$sims), scalar(keys %$sims),
	'every scan on the server maps to exactly one row');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM invicti_scans WHERE scan_id IS NULL'),
	'0', 'no row left without its scan');
my %per_target;
$per_target{ $_->{target_id} }++ for values %$sims;
is(scalar(grep { $_ != 1 } values %per_target), 0, 'no target was launched twice');

ok(!log_contains($standby, qr/ERROR|PANIC|TRAP/, $log_offset),
	'promoted: no error in the new primary\'s log');

done_testing();
