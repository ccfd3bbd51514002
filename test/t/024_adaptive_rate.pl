# The adaptive rate limit (issue 21), with no max_requests_per_minute set:
# a token others share, answered 429 at random, still gets every scan
# launched once, polled and imported, through worker crashes; against a
# server that enforces a limit the worker settles under it; Retry-After is
# obeyed exactly, never doubled; a 429 without any delay backs off; a
# server's rate-limit headers pace the worker so that it draws no 429 at
# all; with no 429 the worker is not limited.
use strict;
use warnings;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use InvictiTest;

my @short = map { target_uuid("adaptive-short-$_") } 1 .. 40;
my @parked = map { target_uuid("adaptive-parked-$_") } 1 .. 20;
my $sim = start_simulator(time_scale => 0.1,
	targets => [ (map { { target_id => $_, outcome => 'completed', duration_scale => 15,
				severity_counts => { low => 120 } } } @short),
		(map { { target_id => $_, outcome => 'running' } } @parked) ]);
my $node = new_node('adaptive', sim => $sim,
	settings => { restart_after_crash => 'on',
				  'invicti_scan.poll_interval' => "'1s'",
				  'invicti_scan.retry_max_delay' => "'30s'" });
sub sql { $node->safe_psql('postgres', $_[0]) }
sub stats { decode_json(sql('SELECT row_to_json(s) FROM invicti_scan_stats s')) }

is(stats()->{budget_per_minute}, undef, 'no ceiling is set (max_requests_per_minute = 0)');

# --- a steady 15% of requests answered 429, and the worker SIGKILLed ----------
$sim->faults({ match => { path => '^/api/' }, fault => 'status', status => 429,
		retry_after => 1, probability => 0.15 });
my $seq = $sim->next_seq;
my @ids = launch_many($node, @short);
my $in = join ',', @ids;
my $kills = 0;
my $deadline = time() + 240;
while (time() < $deadline)
{
	last if sql("SELECT count(*) FROM invicti_scans WHERE id IN ($in) AND worker_state = 'done'") == 40;
	if ($kills < 3 && time() > $deadline - 240 + 4 * ($kills + 1))
	{
		my $pid = worker_pid($node);
		if ($pid)
		{
			kill('KILL', $pid) and $kills++;
			wait_worker_back($node, $pid);
		}
	}
	sleep 0.5;
}
is($kills, 3, 'the worker was SIGKILLed three times meanwhile');
is(sql("SELECT count(*) FROM invicti_scans WHERE id IN ($in) AND worker_state = 'done' AND status = 'completed'
	AND findings_imported_at IS NOT NULL"),
	'40', 'under 15% random 429s, all 40 scans were launched, ran and were imported');
my %created;
$created{ $_->{target_id} }++ for values %{ $sim->scans };
is(scalar(grep { ($created{$_} // 0) != 1 } @short), 0, 'each exactly once: none launched twice, none lost');
my @log = grep { $_->{path} =~ m{^/api/} } $sim->log_entries($seq);
my $refused = grep { $_->{status} == 429 } @log;
cmp_ok($refused, '>', 10, sprintf('%d of %d requests were answered 429', $refused, scalar(@log)));
cmp_ok(stats()->{rate_cuts}, '>=', 1, 'the worker cut its rate after a 429 (invicti_scan_stats.rate_cuts)');
$sim->faults();

# --- Retry-After is obeyed exactly: 1 s, again and again, never doubled ----------
sql("SELECT invicti_launch_scan('$_', '" . PROFILE_HIGH_RISK . "')") for @parked;
wait_for($node, "SELECT count(*) = 20 FROM invicti_scans WHERE status = 'processing' AND progress = 49",
	'20 scans running, polled every second', 60);
$node->append_conf('postgresql.conf', "invicti_scan.poll_method = 'scan'");
$node->reload;
sleep 2;
my ($one) = split /\n/, sql("SELECT scan_id FROM invicti_scans WHERE status = 'processing' ORDER BY id LIMIT 1");
$seq = $sim->next_seq;
$sim->faults({ match => { method => 'GET', path => "^/api/v1/scans/$one\$" }, fault => 'status', status => 429,
		retry_after => 1, count => 4 });
wait_until(sub { grep({ $_->{status} == 429 } $sim->log_entries($seq)) >= 4 }, 'four 429s in a row', 30);
sleep 3;
# the pause after each 429: until the first request that left after it
# (requests already on the wire arrive within milliseconds)
sub pauses
{
	my @log = @_;
	my @p;
	for my $t (map { $_->{time} } grep { $_->{status} == 429 } @log)
	{
		my ($next) = grep { $_->{time} > $t + 0.1 } @log;
		push @p, $next->{time} - $t if $next;
	}
	return @p;
}
@log = $sim->log_entries($seq);
my @p = pauses(@log);
is(scalar(grep { $_ >= 0.9 && $_ <= 1.6 } @p), scalar(@p),
	sprintf('each pause after a 429 with Retry-After: 1 lasts the second asked for: %s s (not 1, 2, 4, 8)',
		join(', ', map { sprintf('%.2f', $_) } @p)));

# --- 429s with no delay at all: the pause grows ---------------------------------------
$seq = $sim->next_seq;
$sim->faults({ match => { path => '^/api/' }, fault => 'status', status => 429 });
sleep 12;
@p = pauses($sim->log_entries($seq));
ok(@p >= 3 && $p[-1] > 2 * $p[0],
	sprintf('every request refused with no delay given: the pause grows (%s s)', join(', ', map { sprintf('%.2f', $_) } @p)));
$sim->faults();
wait_until(sub { stats()->{paused_until} eq '' || !defined stats()->{paused_until} }, 'the pause ends', 60);

# --- a server that enforces 300 requests a minute: the worker settles under it -------
# 20 scans polled scan by scan every second want 1,200 a minute.
$sim->config(rate_limit => 300);
sleep 20;    # converging
$seq = $sim->next_seq;
my $t0 = time();
sleep 30;
my $t1 = time();
@log = grep { $_->{path} =~ m{^/api/} && $_->{time} >= $t0 && $_->{time} <= $t1 } $sim->log_entries($seq);
$refused = grep { $_->{status} == 429 } @log;
my $accepted_per_min = (@log - $refused) * 60 / ($t1 - $t0);
cmp_ok($accepted_per_min, '<=', 300 * 1.05, sprintf('%.0f requests a minute accepted: under the server\'s 300', $accepted_per_min));
cmp_ok($accepted_per_min, '>=', 300 * 0.5, 'and at least half of it used');
cmp_ok($refused / (@log || 1), '<', 0.2, sprintf('429s: %d of %d requests (under 20%%)', $refused, scalar(@log)));
my $effective = stats()->{budget_effective_per_minute};
ok(defined $effective && $effective < 600,
	sprintf('invicti_scan_stats shows the learnt rate: %.0f a minute', $effective // -1));
my $refreshed = refresh_times($t0, $t1, @log);
is(scalar(grep { @{ $refreshed->{$_} // [] } >= 2 } keys %$refreshed), 20,
	'every scan was refreshed at least twice: none starved');

# --- the server's headers pace the worker: no 429 -----------------------------------
$sim->config(rate_limit => 120, rate_limit_algorithm => 'fixed_window', rate_limit_headers => 'x-ratelimit');
sleep 65;    # one window to learn the headers in
$seq = $sim->next_seq;
$t0 = time();
sleep 60;
$t1 = time();
@log = grep { $_->{path} =~ m{^/api/} && $_->{time} >= $t0 && $_->{time} <= $t1 } $sim->log_entries($seq);
$refused = grep { $_->{status} == 429 } @log;
cmp_ok($refused, '<=', 2, sprintf('with X-RateLimit-Remaining and -Reset, %d requests refused in a minute', $refused));
cmp_ok(scalar(@log) - $refused, '>=', 120 * 0.8, sprintf('and %d accepted (the window allows 120)', @log - $refused));

# --- no 429: no limit -----------------------------------------------------------------
$sim->config(rate_limit => 0);
wait_until(sub { !defined stats()->{budget_effective_per_minute} },
	'a minute without a 429 and without headers lifts the limit', 150);
$seq = $sim->next_seq;
sleep 5;
my $sent = grep { $_->{method} eq 'GET' } $sim->log_entries($seq);
cmp_ok($sent, '>=', 5 * 20 * 0.8, "$sent requests in 5 s: every scan every second again");

done_testing();
