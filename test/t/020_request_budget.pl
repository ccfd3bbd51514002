# The ceiling an operator sets (invicti_scan.max_requests_per_minute): with
# far more work than it allows, the worker sends no more than the ceiling,
# spread evenly; no running scan is starved; a launch goes out ahead of the
# polls; a 429 lowers the rate below the ceiling and it grows back within
# seconds; with adaptive_rate_limit off a 429 leaves the rate alone;
# invicti_scan_stats shows all of it.
use strict;
use warnings;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use List::Util qw(max);
use InvictiTest;

my $n = 20;
my @parked = map { target_uuid("budget-$_") } 1 .. $n;
my $late = target_uuid('budget-late');
my $sim = start_simulator(
	targets => [ (map { { target_id => $_, outcome => 'running' } } @parked),
		{ target_id => $late, outcome => 'running' } ]);
# 20 scans polled scan by scan every second want 1,200 requests a minute;
# the ceiling allows 120 (2 a second, 2 at most at once).
my $node = new_node('budget', sim => $sim,
	settings => { 'invicti_scan.poll_method' => 'scan',
				  'invicti_scan.poll_interval' => "'1s'",
				  'invicti_scan.max_requests_per_minute' => 120 });
sub sql { $node->safe_psql('postgres', $_[0]) }
sub stats { decode_json(sql('SELECT row_to_json(s) FROM invicti_scan_stats s')) }

my @ids = launch_many($node, @parked);
wait_for($node, "SELECT count(*) = $n FROM invicti_scans WHERE status = 'processing' AND progress = 49",
	"$n scans running", 60);
sleep 5;    # the bucket is drained by now: steady state

# --- at most the budget, spread evenly, nobody starved ------------------------------
my $seq = $sim->next_seq;
my $t0 = time();
sleep 30;
my $t1 = time();
my @log = grep { $_->{time} >= $t0 && $_->{time} <= $t1 } $sim->log_entries($seq);
my $sent = scalar(@log);
cmp_ok($sent, '<=', 2 * 30 + 2, "$sent requests in 30 s: within the ceiling (120 a minute, 2 at once)");
cmp_ok($sent, '>=', 2 * 30 - 10, 'and the budget is used');
my $burst = 0;
for my $i (0 .. $#log)
{
	my $in_second = grep { $_->{time} >= $log[$i]{time} && $_->{time} < $log[$i]{time} + 1 } @log;
	$burst = $in_second if $in_second > $burst;
}
cmp_ok($burst, '<=', 4, "spread evenly: at most $burst requests in any one second");
my $times = refresh_times($t0, $t1, @log);
my %scan_of = split /[|\n]/, sql("SELECT id, scan_id FROM invicti_scans WHERE id IN (" . join(',', @ids) . ")");
my @counts = map { scalar(@{ $times->{ $scan_of{$_} } // [] }) } @ids;
cmp_ok((sort { $a <=> $b } @counts)[0], '>=', 2, 'every scan was refreshed at least twice: none starved');
my $max_gap = 0;
for my $list (values %$times)
{
	my @t = sort { $a <=> $b } @$list;
	$max_gap = max($max_gap, map { $t[$_] - $t[ $_ - 1 ] } 1 .. $#t);
}
# 20 scans at 2 requests a second: one round every 10 s
cmp_ok($max_gap, '<=', 15, sprintf('the longest gap between two refreshes of a scan: %.1f s (bound: 20 scans / 2 a second = 10 s, and slack)', $max_gap));

my $s = stats();
is($s->{budget_per_minute}, 120, 'invicti_scan_stats: the ceiling');
is($s->{budget_effective_per_minute}, 120, 'the effective rate, with no 429 yet');
cmp_ok($s->{requests_last_minute}, '<=', 130, "requests in the last minute: $s->{requests_last_minute}");
cmp_ok($s->{budget_waits}, '>', 0, 'requests held for the budget are counted');

# --- a launch goes out ahead of the polls ----------------------------------------------
$seq = $sim->next_seq;
my $before = time();
my $late_id = launch($node, $late);
wait_until(sub { grep { $_->{method} eq 'POST' } $sim->log_entries($seq) },
	'a launch under a saturated budget is sent', 10);
my ($post) = grep { $_->{method} eq 'POST' } $sim->log_entries($seq);
cmp_ok($post->{time} - $before, '<=', 2,
	sprintf('within %.1f s of the commit: launches are served before polls', $post->{time} - $before));

# --- a 429 lowers the rate below the ceiling, and it grows back ---------------------------
$sim->faults({ match => { method => 'GET' }, fault => 'status', status => 429, retry_after => 1, count => 1 });
wait_until(sub { (stats()->{budget_effective_per_minute} // 120) < 120 },
	'after a 429 the effective rate is lower', 20);
my $cut = stats()->{budget_effective_per_minute};
ok($cut >= 84 - 1 && $cut < 120,
	sprintf('cut to %.1f a minute: at least 0.7 of the rate in use (CUBIC\'s factor), and not below what the server accepted', $cut));
is(stats()->{rate_cuts}, 1, 'one cut counted');
my $back = time();
wait_until(sub { stats()->{budget_effective_per_minute} >= 119.9 }, 'the rate grows back to the ceiling', 30);
cmp_ok(time() - $back, '<=', 10, sprintf('within %.1f s (one window: 5 s)', time() - $back));

# --- adaptive_rate_limit = off: a 429 pauses (Retry-After), the rate stays --------------
$node->append_conf('postgresql.conf', 'invicti_scan.adaptive_rate_limit = off');
$node->reload;
sleep 1;
$sim->faults({ match => { method => 'GET' }, fault => 'status', status => 429, retry_after => 1, count => 1 });
$seq = $sim->next_seq;
wait_until(sub { grep { $_->{status} == 429 } $sim->log_entries($seq) }, 'another 429', 20);
sleep 2;
is(stats()->{budget_effective_per_minute}, 120, 'adaptive_rate_limit = off: the rate is the ceiling still');
is(stats()->{rate_cuts}, 1, 'and no cut was counted');

# --- no limit ---------------------------------------------------------------------------
$node->append_conf('postgresql.conf', 'invicti_scan.max_requests_per_minute = 0');
$node->reload;
wait_until(sub { !defined stats()->{budget_per_minute} }, 'max_requests_per_minute = 0: no budget', 10);
$seq = $sim->next_seq;
sleep 5;
$sent = grep { $_->{method} eq 'GET' } $sim->log_entries($seq);
cmp_ok($sent, '>=', 5 * $n * 0.8, "$sent requests in 5 s: every scan every second again");

done_testing();
