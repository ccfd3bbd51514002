# The worker's normal life: launch, poll both response shapes, take the scan
# id from Location or body, follow every outcome to its final state, and
# send nothing for a rolled-back launch.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use InvictiTest;

my %outcome_target = map { $_ => target_uuid("lifecycle-$_") }
  qw(completed failed aborted paused unknown);
# The unknown outcome runs slower so that its unknown status ("under_review")
# lasts a few poll intervals.
my $sim = start_simulator(
	targets => [
		map {
			{
				target_id => $outcome_target{$_},
				outcome => $_,
				duration_scale => $_ eq 'unknown' ? 16 : 1
			}
		} sort keys %outcome_target
	]);
my $node = new_node('lifecycle', sim => $sim);

# The worker shows up in pg_stat_activity under a clear name.
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity
		 WHERE backend_type = 'invicti_scan worker'
		   AND application_name = 'invicti_scan worker'"),
	'1', 'worker visible in pg_stat_activity');

# Every outcome, with the seed's wrapped GET shape.
my %id;
$id{$_} = launch($node, $outcome_target{$_}) for sort keys %outcome_target;
wait_for($node,
	"SELECT status = 'under_review' AND worker_state = 'poll'
	 FROM invicti_scans WHERE id = $id{unknown}",
	'a status the client has never seen is stored verbatim and still polled');
wait_for($node,
	"SELECT bool_and(status = CASE target_id
	   WHEN '$outcome_target{completed}' THEN 'completed'
	   WHEN '$outcome_target{failed}' THEN 'failed'
	   WHEN '$outcome_target{aborted}' THEN 'aborted'
	   WHEN '$outcome_target{paused}' THEN 'paused'
	   WHEN '$outcome_target{unknown}' THEN 'completed' END)
	 FROM invicti_scans",
	'every outcome reaches its final status');

wait_for($node, "SELECT count(*) = 0 FROM invicti_scans WHERE worker_state = 'import'",
	'findings of completed scans imported');
my $sims = $sim->scans;
for my $outcome (sort keys %outcome_target)
{
	my $row = scan_row($node, $id{$outcome});
	my $s = $sims->{ $row->{scan_id} };
	ok($s, "$outcome: scan_id $row->{scan_id} exists on the server");
	is_deeply($row->{severity_counts}, $s->{severity_counts},
		"$outcome: severity counts as the API sent them");
	is($row->{progress}, $s->{progress}, "$outcome: progress");
	is($row->{scan_session_id}, $s->{scan_session_id}, "$outcome: session id");
	is($row->{last_error}, undef, "$outcome: no error");
	ok(defined $row->{start_date}, "$outcome: start_date set");
	is(defined $row->{end_date} ? 1 : 0, $outcome eq 'paused' ? 0 : 1,
		"$outcome: end_date only when finished");
	is($row->{worker_state}, $outcome eq 'paused' ? 'poll' : 'done',
		"$outcome: parked scans keep being polled, finished ones do not");
	ok($row->{last_response}, "$outcome: last response kept as jsonb");
}

# Headers of every request the worker sent.
my @log = $sim->log_entries;
is(scalar(grep { $_->{auth} ne 'ok' } @log), 0, 'every request carried the X-Auth token');
is(scalar(grep { ($_->{accept} // '') ne 'application/json' } @log), 0,
	'every request asked for application/json');
my $version = $node->safe_psql('postgres',
	"SELECT default_version FROM pg_available_extensions WHERE name = 'invicti_scan'");
my $major = $node->safe_psql('postgres',
	"SELECT current_setting('server_version_num')::int / 10000");
like($log[0]{user_agent}, qr{^invicti_scan/\Q$version\E \(PostgreSQL $major\) libcurl/},
	"User-Agent names the extension and its version ($version)");
my @posts = $sim->launches;
is(scalar(@posts), 5, 'one POST per launch');
is(scalar(grep { $_->{content_type} !~ m{^application/json} } @posts), 0,
	'launch bodies are JSON');

# The single-object shape, with the id only in Location, then only in the body.
for my $case (['single', 'location'], ['single', 'body'], ['wrapped', 'body'])
{
	my ($shape, $where) = @$case;
	$sim->config(shape => $shape, scan_id_in => $where);
	my $id = launch($node, $outcome_target{completed});
	wait_for($node,
		"SELECT status = 'completed' AND progress = 100 AND scan_id IS NOT NULL
		 FROM invicti_scans WHERE id = $id",
		"shape $shape, scan id in $where only: completed");
}
$sim->config(shape => 'wrapped', scan_id_in => 'body+location');

# A rolled-back launch sends nothing; a committed one wakes the worker at once.
my $posts_before = scalar($sim->launches);
$node->safe_psql('postgres',
	"BEGIN; SELECT invicti_launch_scan('$outcome_target{completed}', '"
	  . PROFILE_HIGH_RISK . "'); ROLLBACK;");
my $t0 = time();
my $id = launch($node, $outcome_target{completed});
wait_for($node,
	"SELECT scan_id IS NOT NULL FROM invicti_scans WHERE id = $id",
	'committed launch is sent');
is(scalar($sim->launches), $posts_before + 1, 'the rolled-back launch was never sent');
is($node->safe_psql('postgres', 'SELECT count(*) FROM invicti_scans'),
	'9', 'no row for the rolled-back launch');

done_testing();
