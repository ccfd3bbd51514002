# What each API failure does to a row: refused tokens, unknown targets,
# deleted scans, rate limits, server errors and broken bodies.  Nothing is
# lost, errors are readable, and the token never appears anywhere.
use strict;
use warnings;
use HTTP::Tiny;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use InvictiTest;

my $done = target_uuid('errors-completed');
my $parked = target_uuid('errors-paused');
my $slow = target_uuid('errors-slow');
my $sim = start_simulator(
	targets => [
		{ target_id => $done, outcome => 'completed' },
		{ target_id => $parked, outcome => 'paused' },
		{ target_id => $slow, outcome => 'completed' },
	]);
# Each failure is written to the row it happened to, so running scans are
# polled scan by scan here (a failed list page belongs to no row:
# 019_list_polling.pl tests those).
my $node = new_node('errors', sim => $sim,
	settings => { 'invicti_scan.max_response_size' => "'64kB'",
				  'invicti_scan.poll_method' => 'scan' });

sub row { scan_row($node, $_[0]) }

# --- 401, then the token fixed by a reload -------------------------------
my $active = launch($node, $parked);
wait_for($node, "SELECT status = 'paused' FROM invicti_scans WHERE id = $active",
	'a parked scan is being polled');

my $log_offset = -s $node->logfile;
my $new_token = 'rotated-token-9a8b7c6d5e';
$sim->config(token => $new_token);    # the worker's token is now wrong
my $pending = launch($node, $done);
wait_for($node,
	"SELECT last_error LIKE '%HTTP 401%' FROM invicti_scans WHERE id = $pending",
	'401 on launch is recorded');
sleep 4;    # several retries with backoff
my $r = row($pending);
is($r->{status}, 'pending', '401: the launch stays pending');
is($r->{worker_state}, 'launch', '401: the launch will be retried');
like($r->{last_error}, qr/refused the API token/, '401: readable last_error');
is(row($active)->{worker_state}, 'poll', '401: the running scan stays tracked');
is(count_in_log($node, qr/WARNING:  invicti_scan: Invicti refused the API token/, $log_offset),
	1, 'one WARNING for the whole episode, not one per request');

$node->append_conf('postgresql.conf', "invicti_scan.api_token = '$new_token'");
$node->reload;
wait_for($node,
	"SELECT status = 'completed' AND last_error IS NULL FROM invicti_scans WHERE id = $pending",
	'after the token is fixed by a reload the scan runs');
ok(log_contains($node, qr/accepts the API token again/, $log_offset),
	'recovery is logged');

# --- 403: a token without the permission ---------------------------------
$sim->config(forbidden_token => $new_token);
$pending = launch($node, $done);
wait_for($node,
	"SELECT last_error LIKE '%HTTP 403%' AND status = 'pending' FROM invicti_scans WHERE id = $pending",
	'403 keeps the launch pending');
$sim->config(forbidden_token => undef);
wait_for($node, "SELECT status = 'completed' FROM invicti_scans WHERE id = $pending",
	'403 resolved: launched');

# --- 404 / 400 / 422 on launch: error for good, with the API's reason ------
my $unknown_target = target_uuid('errors-no-such-target');
my $bad = launch($node, $unknown_target);
wait_for($node, "SELECT status = 'error' FROM invicti_scans WHERE id = $bad",
	'404 on launch ends in status error');
$r = row($bad);
like($r->{last_error}, qr/^launch: HTTP 404 from Invicti: \w.* \(code 404\): /,
	'404: reason and code in last_error');
like($r->{last_error}, qr/$unknown_target|arget/, '404: details in last_error');
is($r->{worker_state}, 'done', '404: not retried');

for my $code (400, 422)
{
	$sim->faults({ match => { method => 'POST', path => '^/api/v1/scans$' },
		fault => 'status', status => $code, count => 1 });
	my $id = launch($node, $done);
	wait_for($node, "SELECT status = 'error' FROM invicti_scans WHERE id = $id",
		"$code on launch ends in status error");
	like(row($id)->{last_error}, qr/HTTP $code/, "$code: last_error names the status");
}

# --- 404 on poll: the scan was deleted on the server ----------------------
my $victim = launch($node, $parked);
wait_for($node, "SELECT status = 'paused' FROM invicti_scans WHERE id = $victim",
	'scan to delete is running');
my $scan_id = row($victim)->{scan_id};
my $res = HTTP::Tiny->new->request('DELETE', $sim->api_url . "/api/v1/scans/$scan_id",
	{ headers => { 'X-Auth' => $new_token } });
is($res->{status}, 204, 'scan deleted on the server');
wait_for($node, "SELECT worker_state = 'done' FROM invicti_scans WHERE id = $victim",
	'404 on poll stops polling');
like(row($victim)->{last_error}, qr/no longer exists.*HTTP 404.*polling stopped/,
	'404 on poll: last_error says so');
my $polls = grep { $_->{path} eq "/api/v1/scans/$scan_id" } $sim->log_entries;
sleep 2.5;
is(scalar(grep { $_->{path} eq "/api/v1/scans/$scan_id" } $sim->log_entries),
	$polls, 'a deleted scan is not polled again');

# --- 429: the pause covers the whole API -----------------------------------
for my $case ([ 'seconds', { retry_after => 3 } ],
	[ 'HTTP date', { retry_after => 'date', seconds => 3 } ],
	[ 'no Retry-After', {} ])
{
	my ($name, $extra) = @$case;
	my $seq = $sim->next_seq;
	$sim->faults({ match => { method => 'POST' }, fault => 'status',
		status => 429, count => 1, %$extra });
	my $id = launch($node, $done);
	wait_for($node, "SELECT scan_id IS NOT NULL FROM invicti_scans WHERE id = $id",
		"429 ($name): launched after the pause");
	my @after = $sim->log_entries($seq);
	my ($limited) = grep { $_->{status} == 429 } @after;
	my @next = grep { $_->{seq} > $limited->{seq} } @after;
	my $gap = $next[0]{time} - $limited->{time};
	if (exists $extra->{retry_after})
	{
		cmp_ok($gap, '>=', 2.0, "429 ($name): no request at all before Retry-After");
	}
	else
	{
		cmp_ok($gap, '>=', 0.4, "429 ($name): exponential backoff before the next request");
	}
	is(scalar(grep { $_->{method} eq 'POST' } @after), 2, "429 ($name): one retry of the launch");
}

# --- 5xx, garbage, HTML, truncated, empty, huge bodies, timeouts on poll ----
my $long = launch($node, $slow);
wait_for($node, "SELECT scan_id IS NOT NULL FROM invicti_scans WHERE id = $long",
	'a long scan is launched');
$sim->control('POST', '/_sim/scans/' . row($long)->{scan_id} . '/force',
	{ status => 'processing', progress => 50 });
wait_for($node, "SELECT status = 'processing' FROM invicti_scans WHERE id = $long",
	'the long scan is processing');
my $poll_path = '^/api/v1/scans/' . row($long)->{scan_id} . '$';
for my $case (
	[ '500', { fault => 'status', status => 500 }, qr/HTTP 500 from Invicti.*code 500/ ],
	[ '502 HTML', { fault => 'html', status => 502 }, qr/HTTP 502.*text\/html/ ],
	[ 'garbage', { fault => 'garbage' }, qr/not (valid JSON|UTF-8 text)/ ],
	[ 'empty body', { fault => 'empty' }, qr/response body was empty/ ],
	[ 'truncated', { fault => 'truncate' }, qr/cut short/ ],
	[ 'huge', { fault => 'huge', bytes => 1_000_000 }, qr/larger than invicti_scan.max_response_size \(64 kB\)/ ],
	[ 'timeout', { fault => 'latency', ms => 5000 }, qr/[Tt]imeout|timed out/ ],
	[ 'dropped', { fault => 'drop' }, qr/no response from Invicti|Empty reply|closed/ ])
{
	my ($name, $rule, $pattern) = @$case;
	# the fault lasts until the error is seen: a loaded machine that samples
	# the row slowly cannot miss an error the next good poll clears
	$sim->faults({ match => { method => 'GET', path => $poll_path }, %$rule });
	wait_for($node,
		"SELECT last_error IS NOT NULL FROM invicti_scans WHERE id = $long",
		"$name: the failed poll is recorded", 30);
	like(row($long)->{last_error}, $pattern, "$name: readable last_error");
	is(row($long)->{worker_state}, 'poll', "$name: the scan stays tracked");
	$sim->faults();
	wait_for($node,
		"SELECT last_error IS NULL FROM invicti_scans WHERE id = $long",
		"$name: the next good poll clears the error", 30);
}
$sim->control('POST', '/_sim/scans/' . row($long)->{scan_id} . '/force',
	{ status => 'completed', progress => 100 });
wait_for($node, "SELECT status = 'completed' FROM invicti_scans WHERE id = $long",
	'the long scan completes despite every fault');

# --- 503 on launch: provably not processed, resent without reconciliation --
my $seq = $sim->next_seq;
$sim->faults({ match => { method => 'POST' }, fault => 'status', status => 503, count => 1 });
my $id = launch($node, $done);
wait_for($node, "SELECT scan_id IS NOT NULL FROM invicti_scans WHERE id = $id",
	'503 on launch: launched on retry');
my @after = $sim->log_entries($seq);
is(scalar(grep { $_->{method} eq 'POST' } @after), 2, '503: sent twice');
is(scalar(grep { $_->{path} eq '/api/v1/scans' && $_->{method} eq 'GET' } @after), 0,
	'503: no reconciliation needed');
is(row($id)->{attempts}, 2, '503: attempts counted');

# --- a result the table refuses does not hold up the others ----------------
# (a trigger stands in for anything that makes one row's update fail)
$node->safe_psql('postgres', q{
	CREATE FUNCTION refuse_completion() RETURNS trigger LANGUAGE plpgsql AS
	$$ BEGIN
	     IF NEW.status = 'completed' AND NEW.profile_id = '11111111-1111-1111-1111-111111111115'
	     THEN RAISE EXCEPTION 'refusing row %', NEW.id; END IF;
	     RETURN NEW;
	   END $$;
	CREATE TRIGGER refuse BEFORE UPDATE ON invicti_scans
	  FOR EACH ROW EXECUTE FUNCTION refuse_completion();
});
my $refused = launch($node, $done, '11111111-1111-1111-1111-111111111115');
my @others = map { launch($node, $done) } 1 .. 3;
my $others = join ',', @others;
wait_for($node,
	"SELECT bool_and(status = 'completed') FROM invicti_scans WHERE id IN ($others)",
	'the other scans complete while one result keeps failing');
ok(log_contains($node, qr/could not record a result: refusing row $refused/),
	'the refused result is logged');
is(row($refused)->{worker_state}, 'poll', 'the refused scan is still tracked');
$node->safe_psql('postgres', 'DROP TRIGGER refuse ON invicti_scans');
wait_for($node, "SELECT status = 'completed' FROM invicti_scans WHERE id = $refused",
	'once the table accepts it, the result is recorded');

# --- the token is nowhere ---------------------------------------------------
my $serverlog = slurp_file($node->logfile);
for my $token (TOKEN, $new_token)
{
	unlike($serverlog, qr/\Q$token\E/, "token $token absent from the server log");
	is($node->safe_psql('postgres',
			"SELECT count(*) FROM invicti_scans s WHERE s::text LIKE '%$token%'"),
		'0', "token $token absent from every row");
}

done_testing();
