# What applications and operators see around the scans: NOTIFY on every
# status change (when invicti_scan.notify is on), the worker's statistics,
# and retention of old scans.
use strict;
use warnings;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use InvictiTest;

my $done = target_uuid('events-done');
my $slow = target_uuid('events-slow');
my $sim = start_simulator(
	targets => [
		{ target_id => $done, outcome => 'completed' },
		{ target_id => $slow, outcome => 'completed', duration_scale => 60 },
	]);
my $node = new_node('events', sim => $sim, settings => { 'invicti_scan.notify' => 'on' });

sub sql { $node->safe_psql('postgres', $_[0]) }

# --- NOTIFY invicti_scan ----------------------------------------------------
# A listener in its own session; psql prints notifications as they arrive
# between its commands.
my ($out, $err) = ('', '');
my $listener = IPC::Run::start(
	[ 'psql', '-XAtq', '-d', $node->connstr('postgres'),
	  '-c', 'LISTEN invicti_scan', '-c', 'SELECT pg_sleep(8)' ],
	'>', \$out, '2>', \$err);
sleep 1;
my $id = launch($node, $done);
my $aborted = launch($node, $slow);
wait_for($node, "SELECT status = 'processing' FROM invicti_scans WHERE id = $aborted",
	'a scan to abort is processing');
sql("SELECT invicti_abort_scan($aborted)");
$listener->finish;

my @events = $out =~ /Asynchronous notification "invicti_scan" with payload "(.*)" received/g;
is_deeply([ grep { !/^\d+$/ } @events ], [], 'every payload is a row id and nothing else');
my $mine = grep { $_ == $id } @events;
my $statuses = sql("SELECT count(*) FROM (VALUES ('pending'), ('launched'), ('scheduled'),
	('queued'), ('starting'), ('processing'), ('completed')) v");
cmp_ok($mine, '>=', 4, "$mine notifications for one scan, one per status change it went through");
cmp_ok($mine, '<=', $statuses, 'and no more than its statuses: progress alone does not notify');
ok((grep { $_ == $aborted } @events), 'invicti_abort_scan() announces its scan');

# A rolled-back launch announces nothing.
wait_for($node, "SELECT status = 'aborted' FROM invicti_scans WHERE id = $aborted",
	'the aborted scan settled');
($out, $err) = ('', '');
$listener = IPC::Run::start(
	[ 'psql', '-XAtq', '-d', $node->connstr('postgres'),
	  '-c', 'LISTEN invicti_scan', '-c', 'SELECT pg_sleep(2)' ],
	'>', \$out, '2>', \$err);
sleep 0.5;
sql("BEGIN; SELECT invicti_launch_scan('$done', '" . PROFILE_HIGH_RISK . "'); ROLLBACK;");
$listener->finish;
unlike($out, qr/Asynchronous notification/, 'no notification from a rolled-back launch');

# --- invicti_scan_stats ------------------------------------------------------
my $stats = decode_json(sql("SELECT row_to_json(s) FROM invicti_scan_stats s"));
ok($stats->{worker_pid} > 0, 'the worker pid is shown');
cmp_ok($stats->{requests}, '>=', 6, "$stats->{requests} requests counted");
cmp_ok($stats->{requests_by_kind}{launch}{ok}, '>=', 2, 'launches counted by outcome');
cmp_ok($stats->{requests_by_kind}{poll}{ok}, '>=', 2, 'polls counted by outcome');
is($stats->{requests_by_kind}{abort}{ok}, 1, 'the abort counted');
ok(defined $stats->{last_success_at}, 'last successful contact recorded');

$sim->faults({ match => { method => 'POST' }, fault => 'status', status => 429,
	retry_after => 1, count => 1 });
$id = launch($node, $done);
wait_for($node, "SELECT status = 'completed' FROM invicti_scans WHERE id = $id",
	'a launch that met a 429 completes');
my $after = decode_json(sql("SELECT row_to_json(s) FROM invicti_scan_stats s"));
is($after->{rate_limited} - $stats->{rate_limited}, 1, 'the 429 is counted');
cmp_ok($after->{retries}, '>', $stats->{retries}, 'and the retry');
like($after->{last_error}, qr/HTTP 429/, 'the last error is shown');
ok(defined $after->{last_error_at}, 'with its time');
unlike(sql("SELECT s::text FROM invicti_scan_stats s"), qr/\Q@{[TOKEN]}\E/, 'no token in the statistics');

$node->reload;
sleep 1;
my $reloaded = decode_json(sql("SELECT row_to_json(s) FROM invicti_scan_stats s"));
cmp_ok($reloaded->{requests}, '>=', $after->{requests}, 'counters survive a reload');
is($reloaded->{worker_pid}, $after->{worker_pid}, 'same worker after the reload');

# Readable without superuser: pg_monitor and invicti_scan_read_all members.
sql("CREATE ROLE monitor LOGIN IN ROLE pg_monitor");
my ($rc, $count) = $node->psql('postgres', 'SELECT count(*) FROM invicti_scan_stats',
	extra_params => [ '-U', 'monitor' ]);
is($count, '1', 'a pg_monitor member reads the statistics');

# --- retention: invicti_scan.history_days ------------------------------------
# 2,500 old finished scans with findings, some old running ones, some recent.
sql(q{
	INSERT INTO invicti_scans (target_id, profile_id, status, worker_state, created_at, scan_id)
	SELECT gen_random_uuid(), '11111111-1111-1111-1111-111111111111', 'completed', 'done',
	       now() - interval '40 days', gen_random_uuid()
	FROM generate_series(1, 2500);
	INSERT INTO invicti_vulnerabilities (scan_session_id, vuln_id, scan_row_id, raw)
	SELECT gen_random_uuid(), 'v', id, '{}' FROM invicti_scans WHERE created_at < now() - interval '30 days';
	INSERT INTO invicti_scans (target_id, profile_id, status, worker_state, created_at)
	SELECT gen_random_uuid(), '11111111-1111-1111-1111-111111111111', 'completed', 'done',
	       now() - interval '10 days'
	FROM generate_series(1, 20);
});
my $running = launch($node, $slow);
wait_for($node, "SELECT status = 'processing' FROM invicti_scans WHERE id = $running",
	'a scan is running');
sql("UPDATE invicti_scans SET created_at = now() - interval '40 days' WHERE id = $running");
my $recent = sql("SELECT count(*) FROM invicti_scans WHERE created_at > now() - interval '30 days'");

is(sql("SELECT count(*) FROM invicti_scans WHERE created_at < now() - interval '30 days'"), '2501',
	'2501 scans are older than 30 days');
$node->append_conf('postgresql.conf', 'invicti_scan.history_days = 30');
$node->reload;
wait_for($node,
	"SELECT count(*) = 1 FROM invicti_scans WHERE created_at < now() - interval '30 days'",
	'old finished scans are deleted in batches');
is(sql("SELECT worker_state FROM invicti_scans WHERE id = $running"), 'poll',
	'an old scan that is still running is kept');
is(sql("SELECT count(*) FROM invicti_scans WHERE created_at > now() - interval '30 days'"), $recent,
	'recent scans are kept');
is(sql("SELECT count(*) FROM invicti_vulnerabilities WHERE raw = '{}'"), '0',
	'their findings went with them');
ok(log_contains($node, qr/deleted 2500 finished scans older than 30 days/),
	'the worker logs what it deleted');

done_testing();
