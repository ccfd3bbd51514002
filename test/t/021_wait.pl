# Waiting from SQL (issue 15): invicti_wait_scan() returns as soon as the
# worker has made its last write to a scan (findings imported), woken by
# that commit rather than by a timer; it shows as an Extension wait, a
# cancel or statement_timeout ends it cleanly, a timeout returns the status
# so far; and the pipeline recipe (test/ci_gate.sh) passes, fails and
# refuses to decide exactly when it should.
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Spec;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use InvictiTest;

my $clean = target_uuid('wait-clean');
my $risky = target_uuid('wait-risky');
my $broken = target_uuid('wait-failed');
my $parked = target_uuid('wait-parked');
my %none = map { $_ => 0 } qw(critical high medium low info);
my $sim = start_simulator(
	targets => [
		# 12 time units of 0.05 s, times 10: about 6 s
		{ target_id => $clean, outcome => 'completed', duration_scale => 10, severity_counts => \%none },
		{ target_id => $risky, outcome => 'completed', duration_scale => 2,
		  severity_counts => { %none, high => 3 } },
		{ target_id => $broken, outcome => 'failed' },
		{ target_id => $parked, outcome => 'paused' },
	]);
my $node = new_node('wait', sim => $sim);
sub sql { $node->safe_psql('postgres', $_[0]) }
my $slow = InvictiTest::slowdown();    # under valgrind: everything is slower

# A psql of its own, started now; returns (harness, \stdout, \stderr).
sub start_psql
{
	my ($query) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-q', '-A', '-t', '-d', $node->connstr('postgres'), '-c', $query ],
		'>', \$out, '2>', \$err);
	return ($h, \$out, \$err);
}

# --- the wait ends with the worker's last write ----------------------------------------
my $id = launch($node, $clean);
my ($h, $out, $err) = start_psql(
	"SELECT invicti_wait_scan($id, '" . 120 * $slow . " seconds') || '|' || extract(epoch FROM clock_timestamp())");
$h->finish;
my ($status, $returned_at) = split /\|/, $$out;
is($status, 'completed', 'invicti_wait_scan() returns the status of a scan that completed');
my $row = scan_row($node, $id);
is($row->{worker_state}, 'done', 'and the worker was finished with it');
my $last_write = sql("SELECT extract(epoch FROM updated_at) FROM invicti_scans WHERE id = $id");
my $lag = $returned_at - $last_write;
# the wait re-reads the row every 10 s on its own; 2 s is the commit's wake
cmp_ok($lag, '<=', 2 * $slow,
	sprintf('it returned %.2f s after the last write: woken by the commit, not a timer', $lag));
cmp_ok($lag, '>=', 0, 'and not before it');
is($$err, '', 'with nothing on stderr');

$id = launch($node, $risky);
is(sql("SELECT invicti_wait_scan($id)"), 'completed', 'a scan with findings: completed');
is(sql("SELECT count(*) FROM invicti_vulnerabilities WHERE scan_row_id = $id"), '3',
	'and by then its findings are imported');

$id = launch($node, $broken);
is(sql("SELECT invicti_wait_scan($id)"), 'failed', 'a scan that failed: failed');

# --- a timeout returns the status so far -------------------------------------------------
my $parked_id = launch($node, $parked);
wait_for($node, "SELECT status = 'paused' FROM invicti_scans WHERE id = $parked_id",
	'a scan that never finishes is running (paused)');
my ($o, $e) = ('', '');
$node->psql('postgres', "SELECT invicti_wait_scan($parked_id, '1 second')",
	stdout => \$o, stderr => \$e);
is($o, 'paused', 'at the timeout, the status so far');
like($e, qr/NOTICE:  scan $parked_id is not finished after the timeout: its status is paused/,
	'and a NOTICE saying so');

# --- an Extension wait, ended at once by a cancel or statement_timeout --------------------
($h, $out, $err) = start_psql("SELECT invicti_wait_scan($parked_id, '1 hour')");
my $pid = wait_until(
	sub {
		sql("SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT invicti_wait_scan(%'
			 AND wait_event_type = 'Extension' AND wait_event = 'Extension'");
	},
	'the waiting session sleeps in an Extension wait (a latch, not pg_sleep)', 30);
my $t0 = time();
sql("SELECT pg_cancel_backend($pid)");
$h->finish;
cmp_ok(time() - $t0, '<=', 5 * $slow, 'a cancel ends the wait at once');
like($$err, qr/canceling statement due to user request/, 'with the usual error');

$t0 = time();
($h, $out, $err) = start_psql("SET statement_timeout = '1s'; SELECT invicti_wait_scan($parked_id, '1 hour')");
$h->finish;
like($$err, qr/canceling statement due to statement timeout/, 'statement_timeout ends it too');
cmp_ok(time() - $t0, '<=', 6 * $slow, 'after the statement timeout, not the wait\'s');

# --- the pipeline recipe ---------------------------------------------------------------------
my $gate = File::Spec->rel2abs(dirname(__FILE__) . '/../ci_gate.sh');
sub gate
{
	my (@args) = @_;
	local $ENV{PGHOST} = $node->host;
	local $ENV{PGPORT} = $node->port;
	local $ENV{PGDATABASE} = 'postgres';
	local $ENV{INVICTI_SCHEMA} = 'public';
	my ($gout, $gerr) = ('', '');
	IPC::Run::run([ 'sh', $gate, @args ], '>', \$gout, '2>', \$gerr);
	return ($? >> 8, $gerr);
}
my ($rc, $stderr) = gate($clean, PROFILE_HIGH_RISK);
is($rc, 0, 'ci_gate.sh: a clean scan passes (exit 0)');
like($stderr, qr/scan \d+: completed/, 'and says how the scan ended');
($rc) = gate($risky, PROFILE_HIGH_RISK);
is($rc, 1, 'high findings fail the build (exit 1)');
($rc) = gate($risky, PROFILE_HIGH_RISK, 'critical');
is($rc, 0, 'but pass a gate on critical only');
($rc, $stderr) = gate($broken, PROFILE_HIGH_RISK);
is($rc, 2, 'a scan that failed gives no verdict (exit 2)');
like($stderr, qr/has not completed: its status is failed/, 'and the reason');
($rc, $stderr) = gate($parked, PROFILE_HIGH_RISK, 'high', '2 seconds');
is($rc, 2, 'a scan still running at the timeout gives no verdict (exit 2)');
($rc) = gate();
is($rc, 2, 'no arguments: usage, exit 2');

done_testing();
