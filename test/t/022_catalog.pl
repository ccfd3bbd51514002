# The configure step from SQL against the simulator: targets, scanning
# profiles and report templates synced with paging and with deletions;
# failed and endless listings mark nothing vanished; a target added at
# most once across unknown outcomes and a worker kill; a scan launched by
# profile name, unknown and ambiguous names refused.
use strict;
use warnings;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use InvictiTest;

my @targets = map { { target_id => target_uuid("catalog-$_"),
		address => "https://app$_.example.com", criticality => ($_ % 4) * 10 } } 1 .. 230;
my $sim = start_simulator(time_scale => 0.05, targets => \@targets);
my $node = new_node('catalog', sim => $sim,
	settings => { restart_after_crash => 'on' });

sub q1 { return $node->safe_psql('postgres', $_[0]) }

# invicti_sync(), then wait until every catalog finished a round begun after it.
sub sync_now
{
	my ($what) = @_;
	my $before = q1("SELECT clock_timestamp()");
	q1("SELECT invicti_sync()");
	wait_for($node,
		"SELECT bool_and(started_at >= '$before') FROM invicti_sync_status",
		"$what: a sync round ran");
}

sub sim_target_count
{
	return scalar @{ $sim->control('GET', '/_sim/targets')->{targets} };
}

# ---- a full sync, with paging --------------------------------------------
is(q1("SELECT count(*) FROM invicti_targets"), 0, 'nothing synced before asking (sync_interval 0)');
my $seq = $sim->next_seq;
sync_now('first sync');
my $listed = sim_target_count();
cmp_ok($listed, '>', 200, 'the simulator lists more than two pages of targets');
is(q1("SELECT count(*) FROM invicti_targets WHERE vanished_at IS NULL"), $listed,
	'every listed target is in invicti_targets');
my @pages = grep { $_->{method} eq 'GET' && $_->{path} eq '/api/v1/targets' } $sim->log_entries($seq);
is(scalar(@pages), int(($listed + 99) / 100), 'targets were read 100 a page, every page once');
is(q1("SELECT address || '/' || criticality FROM invicti_targets WHERE target_id = '$targets[6]{target_id}'"),
	'https://app7.example.com/30', 'address and criticality are columns');
is(q1("SELECT raw->>'address' FROM invicti_targets WHERE target_id = '$targets[6]{target_id}'"),
	'https://app7.example.com', 'the item as sent is kept as jsonb');
my $profiles = scalar @{ $sim->control('GET', '/_sim/profiles')->{profiles} };
is(q1("SELECT count(*) FROM invicti_scanning_profiles"), $profiles, 'every scanning profile synced');
cmp_ok(q1("SELECT count(*) FROM invicti_report_templates"), '>=', 10, 'the report templates synced');
is(q1("SELECT string_agg(catalog || ':' || items || ':' || skipped || ':' || vanished || ':' || coalesce(last_error, '-'), ' ' ORDER BY catalog) FROM invicti_sync_status"),
	"report_templates:" . q1("SELECT count(*) FROM invicti_report_templates") . ":0:0:- "
	  . "scanning_profiles:$profiles:0:0:- targets:$listed:0:0:-",
	'invicti_sync_status: items, nothing skipped or vanished, no error');

# the older next_cursor paging reads every page too
$sim->config(pagination => 'next_cursor');
$seq = $sim->next_seq;
sync_now('next_cursor paging');
is(scalar(grep { $_->{path} eq '/api/v1/targets' } $sim->log_entries($seq)), int(($listed + 99) / 100),
	'next_cursor paging: every page once');
is(q1("SELECT count(*) FROM invicti_targets WHERE vanished_at IS NULL"), $listed,
	'next_cursor paging: nothing vanished');
$sim->config(pagination => 'cursors');

# ---- deletions are marked, not deleted; a target that returns is unmarked --
$sim->delete_target($targets[9]{target_id});
$sim->delete_target($targets[150]{target_id});
sync_now('after two deletions');
is(q1("SELECT string_agg(address, ',' ORDER BY address) FROM invicti_targets WHERE vanished_at IS NOT NULL"),
	'https://app10.example.com,https://app151.example.com', 'the two deleted targets are marked vanished');
is(q1("SELECT count(*) FROM invicti_targets"), $listed, 'and kept, not deleted');
is(q1("SELECT vanished FROM invicti_sync_status WHERE catalog = 'targets'"), 2, 'the round counted them');
$sim->targets($targets[9]);
sync_now('the target comes back');
is(q1("SELECT count(*) FROM invicti_targets WHERE vanished_at IS NOT NULL"), 1,
	'a target listed again is no longer vanished');

# ---- a listing that fails or never ends marks nothing --------------------
$sim->delete_target($targets[20]{target_id});
$sim->faults({ match => { method => 'GET', path => '^/api/v1/targets$' }, fault => 'status',
	status => 500, count => 1 });
my $before = q1("SELECT clock_timestamp()");
q1("SELECT invicti_sync()");
wait_for($node, "SELECT last_error_at > '$before' FROM invicti_sync_status WHERE catalog = 'targets'",
	'a failed listing is recorded');
like(q1("SELECT last_error FROM invicti_sync_status WHERE catalog = 'targets'"),
	qr/sync request.*HTTP 500/, 'last_error says what failed');
is(q1("SELECT count(*) FROM invicti_targets WHERE vanished_at IS NOT NULL"), 1,
	'nothing was marked vanished by the failed round');
wait_for($node, "SELECT succeeded_at > '$before' FROM invicti_sync_status WHERE catalog = 'targets'",
	'the next round comes by itself, sooner than the interval', 30);
is(q1("SELECT count(*) FROM invicti_targets WHERE vanished_at IS NOT NULL"), 2,
	'the complete round after it marks the deletion');
is(q1("SELECT last_error FROM invicti_sync_status WHERE catalog = 'targets'"), '',
	'and clears the error');

$sim->faults({ match => { method => 'GET', path => '^/api/v1/targets$' }, fault => 'mutate',
	mutation => 'cursor_cycle' });
$sim->delete_target($targets[30]{target_id});
$seq = $sim->next_seq;
sync_now('pages that go in a circle');
like(q1("SELECT last_error FROM invicti_sync_status WHERE catalog = 'targets'"),
	qr/go in a circle.*nothing was marked vanished/, 'a cursor that comes back ends the listing, said so');
# (the rounds after a failed one come sooner; each starts with the profiles)
my @log = $sim->log_entries($seq);
my $rounds = grep { $_->{path} eq '/api/v1/scanning_profiles' } @log;
cmp_ok(scalar(grep { $_->{path} eq '/api/v1/targets' } @log), '<=', 3 * $rounds,
	'after three requests a round');
is(q1("SELECT count(*) FROM invicti_targets WHERE vanished_at IS NOT NULL"), 2,
	'and marks nothing vanished');
$sim->faults();

$sim->faults({ match => { method => 'GET', path => '^/api/v1/scanning_profiles$' }, fault => 'garbage',
	count => 1 });
sync_now('a profile list that cannot be read');
like(q1("SELECT last_error FROM invicti_sync_status WHERE catalog = 'scanning_profiles'"),
	qr/sync request for scanning_profiles/, 'an unreadable answer is an error of that catalog');
is(q1("SELECT last_error IS NULL AND succeeded_at >= started_at FROM invicti_sync_status WHERE catalog = 'report_templates'"),
	't', 'the other catalogs are synced all the same');

# ---- hostile items are skipped, one by one -------------------------------
$sim->targets({ target_id => target_uuid('catalog-long'), address => 'https://long.example.com/' . ('a' x 1100) });
sync_now('a target beyond the spec');
like(q1("SELECT skipped || ' ' || last_error FROM invicti_sync_status WHERE catalog = 'targets'"),
	qr/^1 1 items skipped, the first: a target without an address of 1 to 1024 characters/,
	'an item beyond the spec\'s limits is skipped and named');
is(q1("SELECT count(*) FROM invicti_targets WHERE address LIKE 'https://app%'"), scalar(@targets),
	'and costs no other item');
$sim->delete_target(target_uuid('catalog-long'));

# ---- adding targets, at most once ----------------------------------------
sub add_target
{
	my ($address, $rule) = @_;
	$sim->faults({ match => { method => 'POST', path => '^/api/v1/targets$' }, count => 1, %$rule })
	  if $rule;
	my $seq = $sim->next_seq;
	my $id = q1("SELECT invicti_add_target('$address', 'added by 022', 20)");
	wait_for($node, "SELECT status IN ('created', 'failed') FROM invicti_target_requests WHERE id = $id",
		"$address: answered", 60);
	$sim->faults();
	my $posts = grep { $_->{method} eq 'POST' && $_->{path} eq '/api/v1/targets' } $sim->log_entries($seq);
	my @on_server = grep { $_->{address} eq $address } @{ $sim->control('GET', '/_sim/targets')->{targets} };
	return ($id, $posts, \@on_server);
}

for my $case (
	[ 'a plain 201', undef, 1 ],
	[ 'HTTP 500 after creating it', { fault => 'status', status => 500, process => JSON::PP::true }, 1 ],
	[ 'connection dropped after creating it', { fault => 'drop', when => 'after' }, 1 ],
	[ 'a 201 with a garbage body', { fault => 'garbage', status => 201 }, 1 ],
	[ 'connection dropped before processing', { fault => 'drop', when => 'before' }, 2 ],
	[ 'HTTP 503 before processing', { fault => 'status', status => 503 }, 2 ])
{
	my ($name, $rule, $want_posts) = @$case;
	(my $host = lc $name) =~ s/[^a-z0-9]+/-/g;
	my $address = "https://$host.example.com";
	my ($id, $posts, $on_server) = add_target($address, $rule);
	is(scalar(@$on_server), 1, "$name: exactly one target created");
	is($posts, $want_posts, "$name: $want_posts POST" . ($want_posts > 1 ? 's (the first provably created nothing)' : ''));
	is(q1("SELECT status || ' ' || target_id FROM invicti_target_requests WHERE id = $id"),
		"created $on_server->[0]{target_id}", "$name: the request records the target id");
	is(q1("SELECT address || ' ' || criticality FROM invicti_targets WHERE target_id = '$on_server->[0]{target_id}'"),
		"$address 20", "$name: the target is in invicti_targets at once");
}

my ($refused) = add_target('https://refused.example.com', { fault => 'status', status => 400,
	reason => 'Target address is not allowed' });
like(q1("SELECT status || ': ' || last_error FROM invicti_target_requests WHERE id = $refused"),
	qr/^failed: target creation.*HTTP 400.*Target address is not allowed/,
	'a refusal fails the request with the API\'s reason');

# the worker is killed while the POST is on its way
$sim->faults({ match => { method => 'POST', path => '^/api/v1/targets$' }, fault => 'latency',
	ms => 2000, when => 'after' });
$seq = $sim->next_seq;
my $killed = q1("SELECT invicti_add_target('https://killed.example.com')");
wait_for($node, "SELECT status = 'sending' FROM invicti_target_requests WHERE id = $killed",
	'the POST is in flight');
kill_worker($node);
$sim->faults();
wait_for($node, "SELECT status = 'created' FROM invicti_target_requests WHERE id = $killed",
	'SIGKILL during the POST: reconciled', 60);
my @killed_on_server = grep { $_->{address} eq 'https://killed.example.com' }
  @{ $sim->control('GET', '/_sim/targets')->{targets} };
is(scalar(@killed_on_server), 1, 'SIGKILL during the POST: one target on the server');
is(scalar(grep { $_->{method} eq 'POST' && $_->{path} eq '/api/v1/targets' } $sim->log_entries($seq)), 1,
	'SIGKILL during the POST: one POST');
ok((grep { $_->{method} eq 'GET' && $_->{path} eq '/api/v1/targets' } $sim->log_entries($seq)),
	'SIGKILL during the POST: found by listing the targets');

# ---- launching by profile name -------------------------------------------
$sim->profiles(
	{ profile_id => '11111111-1111-1111-1111-111111111111', name => 'Full Scan', checks => [] },
	{ profile_id => '11111111-1111-1111-1111-111111111112', name => 'High Risk', checks => [] },
	{ profile_id => 'aaaaaaaa-0000-4000-8000-000000000001', name => 'Nightly', checks => [], custom => JSON::PP::true },
	{ profile_id => 'aaaaaaaa-0000-4000-8000-000000000002', name => 'Nightly', checks => [], custom => JSON::PP::true });
sync_now('profiles with a shared name');
my $scan = q1("SELECT invicti_launch_scan('$targets[0]{target_id}', 'High Risk')");
wait_for($node, "SELECT status = 'completed' FROM invicti_scans WHERE id = $scan",
	'a scan launched by profile name completes', 90);
is($sim->scans->{ scan_row($node, $scan)->{scan_id} }{profile_id}, InvictiTest::PROFILE_HIGH_RISK,
	'the server got the profile id the name stands for');
my ($rc, $out, $err) = $node->psql('postgres',
	"SELECT invicti_launch_scan('$targets[0]{target_id}', 'Nightly')");
like($err, qr/scanning profile name "Nightly" is ambiguous.*aaaaaaaa-0000-4000-8000-000000000001, aaaaaaaa-0000-4000-8000-000000000002/s,
	'an ambiguous name is refused, naming the ids');
($rc, $out, $err) = $node->psql('postgres',
	"SELECT invicti_launch_scan('$targets[0]{target_id}', 'Deep Scan')");
like($err, qr/scanning profile "Deep Scan" does not exist/, 'an unknown name is refused');

# ---- the interval ---------------------------------------------------------
$node->append_conf('postgresql.conf', "invicti_scan.sync_interval = '2s'");
$node->reload;
$before = q1("SELECT clock_timestamp()");
wait_for($node, "SELECT count(*) = 3 FROM invicti_sync_status WHERE succeeded_at > '$before'::timestamptz + interval '2 s'",
	'with sync_interval set, rounds come by themselves', 30);

done_testing();
