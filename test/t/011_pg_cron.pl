# The pg_cron recipe (test/pg_cron_recipe.sql, shown in the README) on a real
# pg_cron: it runs verbatim, creates what it says with the privileges it
# says, and its jobs work.  Waiting until 02:00 is not an option, so the
# nightly job's own command is scheduled every minute, as the same role,
# and must launch one scan per critical or high target the worker synced
# (none for a lower criticality or a target Invicti no longer lists) that
# then completes; the retention job's command is run once directly and once
# by pg_cron.
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Spec;
use PostgreSQL::Test::Utils;
use Test::More;
use InvictiTest;

# pg_cron comes from Debian's package for 15; no pg_cron source is
# reachable here to build it for other releases.
my $sharedir = `pg_config --sharedir`;
chomp $sharedir;
plan skip_all => "pg_cron is not installed for this PostgreSQL ($sharedir)"
  unless -f "$sharedir/extension/pg_cron.control";

my $recipe = File::Spec->rel2abs(dirname(__FILE__) . '/../pg_cron_recipe.sql');
my $FULL_SCAN = '11111111-1111-1111-1111-111111111111';
my $NIGHTLY_CMD = "SELECT invicti_launch_scan(target_id, 'Full Scan') FROM invicti_targets\n"
  . '       WHERE criticality >= 20 AND vanished_at IS NULL';

# critical, high, normal, low; and a critical one Invicti stops listing
my %target = map { $_ => target_uuid("cron-$_") } qw(alpha beta gamma off gone);
my %criticality = (alpha => 30, beta => 20, gamma => 10, off => 0, gone => 30);
my $sim = start_simulator(
	targets => [
		map {
			{
				target_id => $target{$_},
				address => "https://$_.cron.example",
				criticality => $criticality{$_},
				outcome => 'completed',
				severity_counts =>
				  { critical => 1, high => 2, medium => 1, low => 0, info => 1 }
			}
		} sort keys %target
	]);
my $node = new_node(
	'pg_cron',
	sim => $sim,
	settings => {
		shared_preload_libraries => "'pg_cron,invicti_scan'",
		'cron.database_name' => "'postgres'",
		# the node listens on a unix socket only: no libpq for pg_cron
		'cron.use_background_workers' => 'on',
		max_worker_processes => 16,
	});
$node->safe_psql('postgres', 'CREATE EXTENSION pg_cron');

# The recipe's pg_hba.conf lines, taken from its comment, go on top.
{
	my @lines = slurp_file($recipe) =~ /^--\s+((?:local|host)\s.*\breject)$/mg;
	is(scalar(@lines), 2, "the recipe's pg_hba.conf lines: @lines");
	my $hba = $node->data_dir . '/pg_hba.conf';
	my $old = slurp_file($hba);
	open(my $fh, '>', $hba) or die "$hba: $!";
	print $fh map({ "$_\n" } @lines), $old;
	close $fh;
	$node->reload;
}

# Verbatim, twice: running it again must be harmless.
for my $round (1, 2)
{
	my ($out, $err);
	my $rc = $node->psql('postgres', '',
		extra_params => [ '-f', $recipe ],
		on_error_stop => 1, stdout => \$out, stderr => \$err);
	is($rc, 0, "recipe runs (round $round)") or diag($err);
}

# The worker's copy of the targets: synced, then synced again after Invicti
# stopped listing one.
sub sync_now
{
	my $before = $node->safe_psql('postgres', 'SELECT clock_timestamp()');
	$node->safe_psql('postgres', 'SELECT invicti_sync()');
	wait_for($node, "SELECT bool_and(succeeded_at >= '$before') FROM invicti_sync_status",
		'the targets and profiles are synced');
}
sync_now();
$sim->delete_target($target{gone});
sync_now();
is($node->safe_psql('postgres', "
	SELECT string_agg(address || ':' || criticality || ':' || (vanished_at IS NULL), ',' ORDER BY address)
	FROM invicti_targets WHERE address LIKE '%.cron.example'"),
	'https://alpha.cron.example:30:true,https://beta.cron.example:20:true,'
	  . 'https://gamma.cron.example:10:true,https://gone.cron.example:30:false,'
	  . 'https://off.cron.example:0:true',
	'invicti_targets: what the nightly job reads');

# The two jobs, as the recipe says.
my $super = $node->safe_psql('postgres', 'SELECT current_user');
is($node->safe_psql('postgres',
		"SELECT string_agg(concat_ws('|', jobname, schedule, username, database, active),
		                   E'\\n' ORDER BY jobname) FROM cron.job"),
	"invicti-findings-retention|30 3 * * *|$super|postgres|t\n"
	  . "invicti-nightly|0 2 * * *|invicti_scheduler|postgres|t",
	'cron.job: nightly as invicti_scheduler at 02:00, retention as the superuser at 03:30; once each after two runs');
is($node->safe_psql('postgres', "SELECT command FROM cron.job WHERE jobname = 'invicti-nightly'"),
	$NIGHTLY_CMD, 'nightly command');

# The role: EXECUTE on the launch function and SELECT on invicti_targets, nothing else.
is($node->safe_psql('postgres', "
	SELECT concat_ws(',', r.rolcanlogin, r.rolsuper, r.rolcreaterole, r.rolcreatedb,
	                 r.rolpassword IS NULL,
	                 has_function_privilege('invicti_scheduler', 'invicti_launch_scan(uuid,uuid)', 'EXECUTE'),
	                 has_function_privilege('invicti_scheduler', 'invicti_abort_scan(bigint)', 'EXECUTE'),
	                 has_table_privilege('invicti_scheduler', 'invicti_targets', 'SELECT'),
	                 has_table_privilege('invicti_scheduler', 'invicti_targets', 'INSERT, UPDATE, DELETE, TRUNCATE'),
	                 has_table_privilege('invicti_scheduler', 'invicti_scans', 'SELECT, INSERT, UPDATE, DELETE'),
	                 has_schema_privilege('invicti_scheduler', 'cron', 'USAGE'),
	                 pg_has_role('invicti_scheduler', 'invicti_scan_read_all', 'MEMBER'))
	FROM pg_authid r WHERE rolname = 'invicti_scheduler'"),
	't,f,f,f,t,t,f,t,f,f,f,f',
	'invicti_scheduler: login (for pg_cron) without password, execute launch, read invicti_targets, nothing more');
is($node->safe_psql('postgres', "
	SELECT (SELECT string_agg(table_name || ':' || privilege_type, ',')
	          FROM information_schema.table_privileges WHERE grantee = 'invicti_scheduler')
	    || ' ' ||
	       (SELECT string_agg(routine_name || ':' || privilege_type, ',')
	          FROM information_schema.routine_privileges WHERE grantee = 'invicti_scheduler')"),
	'invicti_targets:SELECT invicti_launch_scan:EXECUTE',
	'invicti_scheduler: exactly two grants');
# Why it has LOGIN at all: pg_cron schedules nothing for a NOLOGIN role.
my ($rc, $out, $err) = $node->psql('postgres', "
	CREATE ROLE cron_nologin_probe NOLOGIN;
	SELECT cron.schedule_in_database('probe', '0 2 * * *', 'SELECT 1', 'postgres',
	                                 'cron_nologin_probe')", on_error_stop => 1);
like($err, qr/role "cron_nologin_probe" can not log in/,
	'pg_cron refuses a job for a NOLOGIN role: the scheduler role needs LOGIN');
$node->safe_psql('postgres', 'DROP ROLE cron_nologin_probe');
($rc, $out, $err) = $node->psql('postgres', 'SELECT 1',
	extra_params => [ '-U', 'invicti_scheduler' ]);
isnt($rc, 0, 'nobody can log in as invicti_scheduler');
like($err, qr/pg_hba\.conf rejects connection/, '... pg_hba.conf rejects it');

# ---- retention, run directly ----
# Synthetic finished scans (targets the simulator does not know; the worker
# leaves done rows alone) with findings imported $days days ago.
sub finished_scan
{
	my ($name, $days, %o) = @_;
	my $status = $o{status} // 'completed';
	my $imported = $status eq 'completed' ? "now() - interval '$days days'" : 'NULL';
	my $n = $o{findings} // 0;
	my $id = $node->safe_psql('postgres', "
		INSERT INTO invicti_scans (target_id, profile_id, status, worker_state, scan_id,
		    scan_session_id, progress, created_at, updated_at, launched_at,
		    findings_imported_at, next_attempt_at, attempts, severity_counts)
		VALUES ('" . target_uuid("cron-retention-$name") . "', '$FULL_SCAN', '$status', 'done',
		    gen_random_uuid(), gen_random_uuid(), 100, now() - interval '$days days',
		    now() - interval '$days days', now() - interval '$days days', $imported, NULL, 1,
		    jsonb_build_object('critical', 0, 'high', $n, 'medium', 0, 'low', 0, 'info', 0))
		RETURNING id");
	$node->safe_psql('postgres', "
		INSERT INTO invicti_vulnerabilities (scan_session_id, vuln_id, scan_row_id,
		    target_id, vt_name, severity, status, raw, imported_at)
		SELECT s.scan_session_id, 'v' || i, s.id, s.target_id, 'XSS', 3, 'open',
		    jsonb_build_object('vuln_id', 'v' || i), now() - interval '$days days'
		FROM invicti_scans s, generate_series(1, $n) i WHERE s.id = $id") if $n;
	return $id;
}

sub findings_of
{
	my (@ids) = @_;
	return $node->safe_psql('postgres',
		'SELECT count(*) FROM invicti_vulnerabilities WHERE scan_row_id IN ('
		  . join(',', @ids) . ')');
}

sub old_run_details
{
	my ($days) = @_;
	$node->safe_psql('postgres', "
		INSERT INTO cron.job_run_details (jobid, database, username, command, status,
		    return_message, start_time, end_time)
		VALUES (0, 'postgres', 'invicti_scheduler', 'SELECT 1', 'succeeded', 'SELECT 1',
		    now() - interval '$days days', now() - interval '$days days')");
}

my %r;
# superseded for over 90 days: findings go
$r{a_old} = finished_scan('a', 200, findings => 3);
# the latest imported scan of its target keeps its findings however old
$r{a_new} = finished_scan('a', 100, findings => 2);
# a newer scan that imported nothing (failed) supersedes nothing
$r{b_old} = finished_scan('b', 200, findings => 2);
$r{b_new} = finished_scan('b', 10, status => 'failed');
# superseded, but imported less than 90 days ago: kept
$r{c_old} = finished_scan('c', 30, findings => 2);
$r{c_new} = finished_scan('c', 1, findings => 1);
old_run_details(200);
old_run_details(10);

my $scans_before = $node->safe_psql('postgres', 'SELECT count(*) FROM invicti_scans');
my $retention_cmd = $node->safe_psql('postgres',
	"SELECT command FROM cron.job WHERE jobname = 'invicti-findings-retention'");
$node->safe_psql('postgres', $retention_cmd);
is(findings_of($r{a_old}), 0, 'retention: findings superseded for over 90 days deleted');
is(findings_of($r{a_new}), 2, "retention: the target's latest imported findings kept, though 100 days old");
is(findings_of($r{b_old}), 2, 'retention: a later failed scan supersedes nothing');
is(findings_of($r{c_old}, $r{c_new}), 3, 'retention: findings imported less than 90 days ago kept');
is($node->safe_psql('postgres', 'SELECT count(*) FROM invicti_scans'), $scans_before,
	'retention: every scan row kept');
is($node->safe_psql('postgres',
		"SELECT string_agg(extract(day FROM now() - end_time)::int::text, ',')
		 FROM cron.job_run_details WHERE jobid = 0"),
	'10', "retention: pg_cron's run log trimmed to 90 days");
is($node->safe_psql('postgres',
		"SELECT concat_ws(',', invicti_scan_passed($r{a_old}), invicti_scan_passed($r{a_old}, 'critical'),
		                  (SELECT high FROM invicti_severity_trend WHERE id = $r{a_old}))"),
	'f,t,3',
	'retention: a scan without its findings keeps its severity gate and its place in the trend');

# More for the run by pg_cron below.
$r{d_old} = finished_scan('d', 150, findings => 4);
$r{d_new} = finished_scan('d', 120, findings => 1);
old_run_details(91);

# ---- both jobs, every minute, exactly as scheduled ----
# One statement, so that pg_cron sees both at once and runs them in the
# same minute.
my %every_minute = split /[|\n]/, $node->safe_psql('postgres', "
	SELECT jobname, cron.schedule_in_database(jobname || '-every-minute', '* * * * *',
	                                          command, database, username)
	FROM cron.job WHERE jobname IN ('invicti-nightly', 'invicti-findings-retention')");
is(scalar(keys %every_minute), 2, 'both commands scheduled every minute, as their roles');
my $jobs = join ',', values %every_minute;
# The next minute boundary is at most 60 s away; pg_cron starts jobs then.
my $ran = wait_for($node,
	"SELECT count(DISTINCT jobid) = 2 FROM cron.job_run_details
	 WHERE jobid IN ($jobs) AND status = 'succeeded'",
	'pg_cron ran both jobs every minute (until the next minute boundary)', 130);
# Stop them before the next minute: one run each is the test.
$node->safe_psql('postgres', "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobid IN ($jobs)");
diag($node->safe_psql('postgres',
		"SELECT jobid, username, status, return_message, start_time
		 FROM cron.job_run_details WHERE jobid IN ($jobs) ORDER BY runid"))
  unless $ran;

my $nightly = $every_minute{'invicti-nightly'};
is($node->safe_psql('postgres',
		"SELECT string_agg(concat_ws('|', username, status, return_message), ',')
		 FROM cron.job_run_details WHERE jobid = $nightly"),
	'invicti_scheduler|succeeded|SELECT 2',
	'nightly: one run, as invicti_scheduler, launching 2 scans');
is($node->safe_psql('postgres',
		"SELECT string_agg(concat_ws('|', username, status), ',')
		 FROM cron.job_run_details WHERE jobid = $every_minute{'invicti-findings-retention'}"),
	"$super|succeeded", 'retention: one run, as the superuser');
is(findings_of($r{d_old}) . ',' . findings_of($r{d_new}), '0,1',
	'retention by pg_cron: superseded findings deleted, latest kept');
is($node->safe_psql('postgres', 'SELECT count(*) FROM cron.job_run_details WHERE jobid = 0'),
	'1', "retention by pg_cron: pg_cron's run log trimmed");

# One scan per critical or high target still listed, launched by the
# scheduler role with Full Scan; none for the others.
is($node->safe_psql('postgres', "
	SELECT string_agg(t.address || ':' || (s.profile_id = '$FULL_SCAN'), ',' ORDER BY t.address)
	FROM invicti_scans s JOIN invicti_targets t USING (target_id)
	WHERE s.launched_by = 'invicti_scheduler'"),
	'https://alpha.cron.example:true,https://beta.cron.example:true',
	'one scan per critical or high target, by invicti_scheduler, with Full Scan by name')
  or diag($node->safe_psql('postgres',
	"SELECT target_id, profile_id, launched_by FROM invicti_scans"));
is($node->safe_psql('postgres',
		"SELECT count(*) FROM invicti_scans WHERE target_id IN ('$target{gamma}', '$target{off}', '$target{gone}')"),
	'0', 'none for a normal or low target, nor for one Invicti no longer lists');
wait_for($node, "
	SELECT count(*) = 2 FROM invicti_scans s
	WHERE s.launched_by = 'invicti_scheduler' AND s.status = 'completed'
	  AND s.worker_state = 'done' AND s.findings_imported_at IS NOT NULL",
	'the nightly scans complete against the simulator, findings imported');
is($node->safe_psql('postgres', "
	SELECT count(*) FROM invicti_vulnerabilities v
	WHERE v.target_id IN ('$target{alpha}', '$target{beta}')"),
	'10', 'their findings: 5 per target');
is(scalar(grep { $_->{target_id} ne $target{alpha} && $_->{target_id} ne $target{beta} } $sim->launches),
	0, 'nothing sent for the other targets');

# Clean up the way the README says.
$node->safe_psql('postgres', "
	SELECT cron.unschedule(jobid) FROM cron.job
	WHERE jobname IN ('invicti-nightly', 'invicti-findings-retention')");
is($node->safe_psql('postgres', 'SELECT count(*) FROM cron.job'), '0', 'both jobs unscheduled');

done_testing();
