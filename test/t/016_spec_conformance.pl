# The vendor's API as its spec has it, and the variants real servers show
# (issue 12): every paging style (offset cursors, next_cursor as a string or
# an integer, opaque cursors) imports every finding; the end date comes from
# GET /scans/{id}/results when the session has none (the spec's ScanInfo has
# no end_date); failed and aborted sessions' findings are imported; a
# session that has not started is not an error; 400 "Invalid Authorization
# header" is an authentication problem; a 429's delay in its body is
# honoured; dates without a zone are UTC; launch options and schedules reach
# the API.
use strict;
use warnings;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use InvictiTest;

my %counts = (critical => 10, high => 60, medium => 60, low => 60, info => 60);    # 250
my %target = map { $_ => target_uuid("spec-$_") }
  qw(cursors next_cursor next_cursor_int opaque failed aborted slow done dates);
my $sim = start_simulator(
	targets => [
		(map { { target_id => $target{$_}, outcome => 'completed', severity_counts => \%counts } }
			qw(cursors next_cursor next_cursor_int opaque)),
		{ target_id => $target{failed}, outcome => 'failed', severity_counts => \%counts },
		{ target_id => $target{aborted}, outcome => 'aborted', severity_counts => \%counts },
		{ target_id => $target{slow}, outcome => 'completed', duration_scale => 40 },
		{ target_id => $target{done}, outcome => 'completed' },
		{ target_id => $target{dates}, outcome => 'completed' },
	]);
# a TimeZone far from UTC: a date without a zone must still be read as UTC
my $node = new_node('spec', sim => $sim, settings => { timezone => "'Pacific/Chatham'" });
sub sql { $node->safe_psql('postgres', $_[0]) }
sub row { scan_row($node, $_[0]) }

# --- every paging style: 250 findings, each once ------------------------------
for my $style (qw(cursors next_cursor next_cursor_int opaque))
{
	$sim->config($style eq 'opaque' ? (cursors => 'opaque')
		: (cursors => 'offset', pagination => $style));
	my $seq = $sim->next_seq;
	my $id = launch($node, $target{$style});
	wait_for($node, "SELECT findings_imported_at IS NOT NULL FROM invicti_scans WHERE id = $id",
		"$style: the findings are imported", 60);
	is(sql("SELECT count(*), count(DISTINCT vuln_id) FROM invicti_vulnerabilities WHERE scan_row_id = $id"),
		'250|250', "$style: all 250 findings, each once, over three pages");
	my @pages = grep { $_->{path} =~ m{/vulnerabilities$} } $sim->log_entries($seq);
	is(scalar(@pages), 3, "$style: three pages asked for");
	like($pages[-1]{query}, $style eq 'opaque' ? qr/(^|&)c=[A-Za-z0-9_-]+/ : qr/(^|&)c=198(&|$)/,
		"$style: the last page by its cursor");
}
$sim->config(cursors => 'offset', pagination => 'cursors');

# --- the end date comes from the results list ---------------------------------
my $seq = $sim->next_seq;
my $id = launch($node, $target{done});
wait_for($node, "SELECT worker_state = 'done' FROM invicti_scans WHERE id = $id",
	'a completed scan is finished');
my $r = row($id);
ok(defined $r->{end_date}, 'its end_date is set, though current_session had none');
ok(!exists $r->{last_response}{current_session}{end_date}, '(the poll answer had no end_date)');
my $sim_scan = $sim->control('GET', "/_sim/scans/$r->{scan_id}");
is(sql("SELECT end_date = '$sim_scan->{end_date}'::timestamptz FROM invicti_scans WHERE id = $id"),
	't', 'and it is the session end the API lists');
ok((grep { $_->{path} eq "/api/v1/scans/$r->{scan_id}/results" } $sim->log_entries($seq)),
	'read from GET /scans/{id}/results');

# A results request that fails once is retried, and its error cleared.
$sim->faults({ match => { method => 'GET', path => '/results$' },
	fault => 'status', status => 503, count => 1 });
$seq = $sim->next_seq;
$id = launch($node, $target{done});
wait_for($node, "SELECT last_error LIKE 'results request: HTTP 503%' FROM invicti_scans WHERE id = $id",
	'a results request that fails says so in last_error');
wait_for($node, "SELECT worker_state = 'done' FROM invicti_scans WHERE id = $id",
	'and the import carries on', 60);
$r = row($id);
ok(defined $r->{end_date}, 'the retried results request gave the end date');
is($r->{last_error}, undef, 'and the error was cleared once it succeeded');
ok(defined $r->{findings_imported_at}, 'the findings were imported after it');

# With the seed's shape (end_date in the session) no results request is needed.
$sim->config(session_end_date => JSON::PP::true);
$node->append_conf('postgresql.conf', 'invicti_scan.import_vulnerabilities = off');
$node->reload;
$seq = $sim->next_seq;
$id = launch($node, $target{done});
wait_for($node, "SELECT worker_state = 'done' AND end_date IS NOT NULL FROM invicti_scans WHERE id = $id",
	'with end_date in the session and the import off, the scan is done at once');
is(scalar(grep { $_->{path} =~ m{/results} } $sim->log_entries($seq)), 0,
	'without any results request');
$sim->config(session_end_date => JSON::PP::false);
$seq = $sim->next_seq;
$id = launch($node, $target{done});
wait_for($node, "SELECT worker_state = 'done' AND end_date IS NOT NULL AND findings_imported_at IS NULL
	FROM invicti_scans WHERE id = $id",
	'with the import off, the end date is still fetched (and nothing else)');
is(scalar(grep { $_->{path} =~ m{/vulnerabilities} } $sim->log_entries($seq)), 0,
	'no findings were requested');
$node->append_conf('postgresql.conf', 'invicti_scan.import_vulnerabilities = on');
$node->reload;

# --- failed and aborted sessions' findings ------------------------------------
for my $outcome (qw(failed aborted))
{
	my $id = launch($node, $target{$outcome});
	wait_for($node, "SELECT status = '$outcome' AND worker_state = 'done' FROM invicti_scans WHERE id = $id",
		"$outcome: finished", 60);
	my $r = row($id);
	my $counted = 0;
	$counted += $_ for values %{ $r->{severity_counts} };
	ok($counted > 0, "$outcome: the session found $counted vulnerabilities before it ended");
	is(sql("SELECT count(*) FROM invicti_vulnerabilities WHERE scan_row_id = $id"), $counted,
		"$outcome: its findings are imported too");
	ok(defined $r->{end_date}, "$outcome: with its end date");
	my ($rc, $out, $err) = $node->psql('postgres', "SELECT invicti_scan_passed($id)");
	like($err, qr/has not completed: its status is $outcome/, "$outcome: and it still cannot pass");
}

# --- a session that has not started: not an error -----------------------------
$sim->config(session_before_start => 'empty');
$id = launch($node, $target{slow});
my @seen;
my $deadline = time() + 30;
while (time() < $deadline)
{
	my $s = sql("SELECT status || '|' || coalesce(last_error, '') FROM invicti_scans WHERE id = $id");
	push @seen, $s;
	last if $s =~ /^processing/;
	sleep 0.2;
}
like($seen[-1], qr/^processing\|$/, 'an empty current_session before the start: the scan gets to processing');
is_deeply([ grep { !/\|$/ } @seen ], [], 'with no last_error on the way');
ok((grep { /^launched\|$/ } @seen), 'while it had not started, the row stayed "launched"');
$sim->config(session_before_start => 'status_only');
sql("SELECT invicti_abort_scan($id)");

# --- 400 "Invalid Authorization header" is about the token ---------------------
$sim->config(auth_failure => 400, token => 'another-token-0123456789');
$id = launch($node, $target{done});
wait_for($node, "SELECT last_error LIKE '%Invalid Authorization header%' FROM invicti_scans WHERE id = $id",
	'a 400 "Invalid Authorization header" is recorded');
sleep 2;
is(row($id)->{status}, 'pending', 'and the launch stays pending (retried), not an error');
$sim->config(token => TOKEN, auth_failure => 401);
wait_for($node, "SELECT status = 'completed' FROM invicti_scans WHERE id = $id",
	'once the token is accepted, it runs');

# --- 429 with the delay in its body ----------------------------------------------
$seq = $sim->next_seq;
$sim->faults({ match => { method => 'POST' }, fault => 'status', status => 429,
	details => { retry_after => 3 }, count => 1 });
$id = launch($node, $target{done});
wait_for($node, "SELECT scan_id IS NOT NULL FROM invicti_scans WHERE id = $id",
	'429 with {"details": {"retry_after": 3}}: launched after the pause');
my @after = $sim->log_entries($seq);
my ($limited) = grep { $_->{status} == 429 } @after;
my ($next) = grep { $_->{seq} > $limited->{seq} } @after;
cmp_ok($next->{time} - $limited->{time}, '>=', 2.5, 'no request at all before the delay the body asked for');
ok(log_contains($node, qr/asked for 3 s \(a delay in the response body\)/), 'and the log says where it came from');
$sim->faults();

# --- dates without a zone are UTC ----------------------------------------------
$sim->config(dates => 'naive');
$id = launch($node, $target{dates});
wait_for($node, "SELECT worker_state = 'done' FROM invicti_scans WHERE id = $id", 'a scan with zone-less dates');
$r = row($id);
$sim_scan = $sim->control('GET', "/_sim/scans/$r->{scan_id}");
is(sql("SELECT start_date = '$sim_scan->{start_date}'::timestamptz AND end_date = '$sim_scan->{end_date}'::timestamptz
	FROM invicti_scans WHERE id = $id"), 't',
	'its dates are read as UTC, not in the server TimeZone (Pacific/Chatham)');
$sim->config(dates => 'offset');

# --- launch options and schedules reach the API --------------------------------
my $later = sql("SELECT to_char(now() AT TIME ZONE 'UTC' + interval '1 hour', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+00:00\"')");
$id = sql("SELECT invicti_launch_scan('$target{done}', '" . PROFILE_HIGH_RISK . "',
	'{\"incremental\": true, \"max_scan_time\": 30,
	  \"report_template_id\": \"11111111-1111-1111-1111-111111111111\",
	  \"schedule\": {\"start_date\": \"$later\", \"history_limit\": 3, \"recurrence\": \"FREQ=DAILY\"}}')");
wait_for($node, "SELECT scan_id IS NOT NULL FROM invicti_scans WHERE id = $id", 'a launch with options is sent');
$sim_scan = $sim->control('GET', '/_sim/scans/' . row($id)->{scan_id});
is_deeply($sim_scan->{options},
	{ incremental => JSON::PP::true, max_scan_time => 30,
	  report_template_id => '11111111-1111-1111-1111-111111111111' },
	'incremental, max_scan_time and report_template_id reached the API');
is_deeply([ @{ $sim_scan->{schedule} }{qw(start_date history_limit recurrence disable time_sensitive)} ],
	[ $later, 3, 'FREQ=DAILY', JSON::PP::false, JSON::PP::false ],
	'the schedule too, with the seed\'s defaults for what was not given');
sleep 2;
is(row($id)->{status}, 'scheduled', 'and the API honours it: the scan waits for its start date');
$id = sql("SELECT invicti_launch_scan('$target{done}', '" . PROFILE_HIGH_RISK . "',
	'{\"schedule\": {\"disable\": true}}')");
wait_for($node, "SELECT status = 'scheduled' FROM invicti_scans WHERE id = $id",
	'a launch with a disabled schedule is scheduled');
sleep 2;
is(row($id)->{status}, 'scheduled', 'and stays so');

done_testing();
