# pg_upgrade from an older PostgreSQL release (INVICTI_UPGRADE_FROM, the
# old release's bin directory, with invicti_scan installed there) to the
# release under test keeps every scan and finding, and the worker carries on
# where it was: a running scan is polled to its end, a queued launch is sent
# once, a finished scan stays as it was.  During the upgrade itself no worker
# runs (binary-upgrade mode).  run_all.sh sets INVICTI_UPGRADE_FROM to 15
# built from Debian's source (not Debian's 15.20 binaries: see run_all.sh)
# when it tests a release after 15.
use strict;
use warnings;
use File::Basename qw(dirname);
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use InvictiTest;

my $old_bin = $ENV{INVICTI_UPGRADE_FROM} // '';
plan skip_all => 'INVICTI_UPGRADE_FROM names no older release to upgrade from'
  unless $old_bin && -x "$old_bin/initdb" && -f dirname($old_bin) . '/lib/invicti_scan.so';
# the release under test: the first pg_ctl on PATH, as the other tests use
my ($new_bin) = grep { -x "$_/pg_ctl" } split /:/, $ENV{PATH};
plan skip_all => 'the release under test is the one to upgrade from' if $new_bin eq $old_bin;

my %target = map { $_ => target_uuid("upgrade-$_") } qw(done running queued);
my $sim = start_simulator(
	targets => [
		{ target_id => $target{done}, outcome => 'completed',
		  severity_counts => { critical => 1, high => 3, medium => 5, low => 7, info => 9 } },
		{ target_id => $target{running}, outcome => 'completed', duration_scale => 400 },
		{ target_id => $target{queued}, outcome => 'completed' },
	]);

my %conf = (
	shared_preload_libraries => "'invicti_scan'",
	'invicti_scan.poll_interval' => "'1s'",
	'invicti_scan.request_timeout' => "'3s'",
	'invicti_scan.retry_max_delay' => "'2s'",
	'invicti_scan.api_token' => "'" . TOKEN . "'",
	'invicti_scan.base_url' => "'" . $sim->api_url . "'");
sub configure
{
	my ($node) = @_;
	$node->append_conf('postgresql.conf', join('', map { "$_ = $conf{$_}\n" } sort keys %conf));
}

# --- the old release, with scans in every kind of state -------------------------
my $old = PostgreSQL::Test::Cluster->new('old', install_path => dirname($old_bin));
# with checksums, as initdb of 18 makes the new cluster (pg_upgrade wants both alike)
$old->init(extra => ['--data-checksums']);
configure($old);
$old->start;
my $old_version = $old->safe_psql('postgres', 'SHOW server_version_num');
$old->safe_psql('postgres', q{
	CREATE SCHEMA invicti;
	CREATE EXTENSION invicti_scan SCHEMA invicti;
	CREATE ROLE app LOGIN;
	GRANT USAGE ON SCHEMA invicti TO app;
	GRANT EXECUTE ON FUNCTION invicti.invicti_launch_scan(uuid, uuid) TO app;
	GRANT SELECT ON invicti.invicti_scans TO app;
});
sub launch_as_app
{
	my ($node, $t) = @_;
	return $node->safe_psql('postgres',
		"SELECT invicti.invicti_launch_scan('$t', '" . PROFILE_HIGH_RISK . "')",
		extra_params => [ '-U', 'app' ]);
}
my $done = launch_as_app($old, $target{done});
my $running = launch_as_app($old, $target{running});
$old->poll_query_until('postgres',
	"SELECT (SELECT findings_imported_at IS NOT NULL FROM invicti.invicti_scans WHERE id = $done)
	    AND (SELECT status = 'processing' FROM invicti.invicti_scans WHERE id = $running)")
  or die 'the scans did not get going on the old server';
# a launch still queued at the upgrade: the old server cannot send it
$old->append_conf('postgresql.conf', "invicti_scan.base_url = ''");
$old->reload;
$old->wait_for_log(qr/not sending requests: invicti_scan.base_url is not set/);
my $queued = launch_as_app($old, $target{queued});

my $snapshot_sql = q{
	SELECT json_agg(s ORDER BY id)::text FROM (
	  SELECT id, target_id, status, scan_id, scan_session_id, severity_counts, start_date,
	         launched_by, launched_by_oid, findings_imported_at,
	         (SELECT count(*) FROM invicti.invicti_vulnerabilities v WHERE v.scan_row_id = s.id) AS findings,
	         (SELECT string_agg(v.vuln_id, ',' ORDER BY v.vuln_id)
	            FROM invicti.invicti_vulnerabilities v WHERE v.scan_row_id = s.id) AS vuln_ids
	  FROM invicti.invicti_scans s) s};
my $before = $old->safe_psql('postgres', $snapshot_sql);
my $findings_before = $old->safe_psql('postgres', 'SELECT count(*) FROM invicti.invicti_vulnerabilities');
cmp_ok($findings_before, '>', 20, "the old server holds $findings_before findings");
$old->stop;

# --- pg_upgrade ------------------------------------------------------------------
my $new = PostgreSQL::Test::Cluster->new('new');
$new->init;
configure($new);
# held back, like the old server, until the rows are compared
$new->append_conf('postgresql.conf', "invicti_scan.base_url = ''");
my $new_version;
{
	my $dir = PostgreSQL::Test::Utils::tempdir('pg_upgrade');
	chdir $dir;
	my $seq = $sim->next_seq;
	command_ok(
		[ 'pg_upgrade', '--no-sync', '--retain', '-b', $old_bin, '-B', $new_bin,
		  '-d', $old->data_dir, '-D', $new->data_dir,
		  '-p', $old->port, '-P', $new->port, '-s', $new->host ],
		'pg_upgrade from the old release succeeds');
	is(scalar($sim->log_entries($seq)), 0, 'no worker sent anything while pg_upgrade ran');
	# both servers pg_upgrade started logged there (kept by --retain)
	my ($server_log) = glob($new->data_dir . '/pg_upgrade_output.d/*/log/pg_upgrade_server.log');
	my $log = $server_log ? slurp_file($server_log) : '';
	cmp_ok(scalar(() = $log =~ /database system is ready to accept connections/g), '>=', 2,
		'pg_upgrade started both servers (its server log)');
	unlike($log, qr/invicti_scan worker started/, 'and neither started an invicti_scan worker');
}
$new->start;
$new_version = $new->safe_psql('postgres', 'SHOW server_version_num');
cmp_ok(int($new_version / 10000), '>', int($old_version / 10000),
	"upgraded from PostgreSQL " . int($old_version / 10000) . " to " . int($new_version / 10000));

# --- everything is there, and the worker carries on ------------------------------
is($new->safe_psql('postgres', $snapshot_sql), $before,
	'every scan and finding is kept, column for column (role OIDs included)');
is($new->safe_psql('postgres', 'SELECT count(*) FROM invicti.invicti_scans', extra_params => [ '-U', 'app' ]),
	'3', "the launcher still sees its scans (ownership by OID survives)");
$new->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'invicti_scan worker'")
  or die 'no worker on the upgraded server';
my $seq = $sim->next_seq;
$new->append_conf('postgresql.conf', "invicti_scan.base_url = '" . $sim->api_url . "'");
$new->reload;
$sim->control('POST', '/_sim/scans/' . scan_row_in($new, $running)->{scan_id} . '/force',
	{ status => 'completed', progress => 100 });
$new->poll_query_until('postgres',
	"SELECT findings_imported_at IS NOT NULL FROM invicti.invicti_scans WHERE id = $running")
  or diag($new->safe_psql('postgres', 'SELECT id, status, worker_state, last_error FROM invicti.invicti_scans'));
is(scan_row_in($new, $running)->{status}, 'completed', 'the running scan was polled to its end');
$new->poll_query_until('postgres',
	"SELECT status = 'completed' FROM invicti.invicti_scans WHERE id = $queued")
  or diag($new->safe_psql('postgres', 'SELECT id, status, worker_state, last_error FROM invicti.invicti_scans'));
is(scalar(grep { $_->{method} eq 'POST' && $_->{path} eq '/api/v1/scans' } $sim->log_entries($seq)), 1,
	'the queued launch was sent, once');
is(scan_row_in($new, $done)->{status}, 'completed', 'the finished scan is as it was');
is(scalar(grep { $_->{path} =~ /$target{done}|\Q@{[scan_row_in($new, $done)->{scan_id}]}\E/ }
		$sim->log_entries($seq)), 0,
	'and nothing was asked about it again');
my $new_launch = launch_as_app($new, $target{done});
$new->poll_query_until('postgres',
	"SELECT findings_imported_at IS NOT NULL FROM invicti.invicti_scans WHERE id = $new_launch")
  or die 'a new launch did not complete';
ok($new_launch > $queued, 'a new launch gets a new id (the sequence came along)');

sub scan_row_in
{
	my ($node, $id) = @_;
	return decode_json($node->safe_psql('postgres',
		"SELECT row_to_json(s) FROM invicti.invicti_scans s WHERE id = $id"));
}

done_testing();
