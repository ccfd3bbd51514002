# Trust boundaries, tried as an attacker would (issue 10): a database owner
# cannot make the worker run their code; the event channel tells an
# ungranted role nothing and a forged event misleads nobody; a hostile API
# cannot make a loop endless, stall other scans or get its echo of the token
# stored; one role's open transaction delays no other role's scans; plain
# http and the environment's proxies cannot carry the token; API text cannot
# forge log lines or break a reader's encoding.
use strict;
use warnings;
use IO::Socket::INET;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use InvictiTest;

my $done = target_uuid('trust-done');
my $slow = target_uuid('trust-slow');
my $many = target_uuid('trust-many');
my @quick = map { target_uuid("trust-quick-$_") } 1 .. 6;
my $sim = start_simulator(
	targets => [
		{ target_id => $done, outcome => 'completed' },
		{ target_id => $slow, outcome => 'completed', duration_scale => 200 },
		{ target_id => $many, outcome => 'completed',
		  severity_counts => { critical => 3, high => 50, medium => 60, low => 70, info => 80 } },
		map { { target_id => $_, outcome => 'completed' } } @quick,
	]);

# A fake proxy: records what reaches it, answers 502.  With http_proxy set in
# the server's environment, libcurl would send every request through it.
my $proxy = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
	Listen => 16, ReuseAddr => 1) or die "listen: $!";
my $proxy_log = PostgreSQL::Test::Utils::tempdir('proxy') . '/requests';
my $proxy_pid = fork() // die;
if ($proxy_pid == 0)
{
	while (my $c = $proxy->accept)
	{
		my $line = <$c> // '';
		open(my $fh, '>>', $proxy_log) or die;
		print $fh $line;
		close $fh;
		print $c "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
		close $c;
	}
	exit 0;
}
my $proxy_url = 'http://127.0.0.1:' . $proxy->sockport;
sub proxy_requests { return -e $proxy_log ? scalar(() = slurp_file($proxy_log) =~ /\n/g) : 0 }

my $node;
{
	local $ENV{http_proxy} = $proxy_url;
	local $ENV{HTTP_PROXY} = $proxy_url;
	local $ENV{https_proxy} = $proxy_url;
	local $ENV{ALL_PROXY} = $proxy_url;
	$node = new_node('trust', sim => $sim,
		settings => { 'invicti_scan.max_concurrent_requests' => 8, log_statement => "'none'" });
}
sub sql { $node->safe_psql('postgres', $_[0]) }
sub row { scan_row($node, $_[0]) }
my $token = TOKEN;

# --- the environment's proxy is never used ----------------------------------
my $id = launch($node, $done);
wait_for($node, "SELECT status = 'completed' FROM invicti_scans WHERE id = $id",
	'a scan completes with http_proxy & co. set in the server environment');
is(proxy_requests(), 0, 'and nothing went through the proxy of the environment');

# --- 1. a database owner cannot become superuser through the worker ---------
sql(q{
	CREATE ROLE mallory LOGIN;
	ALTER DATABASE postgres OWNER TO mallory;
});
$node->safe_psql('postgres', q{
	CREATE SCHEMA evil;
	CREATE TABLE evil.calls (fn text, usr name DEFAULT current_user, app text DEFAULT current_setting('application_name'),
	                         query text DEFAULT current_query(), at timestamptz DEFAULT clock_timestamp());
	GRANT INSERT ON evil.calls TO PUBLIC;
	GRANT USAGE ON SCHEMA evil TO PUBLIC;
	CREATE FUNCTION evil.escalate(fn text) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO evil.calls (fn) VALUES (fn);
		BEGIN
			ALTER ROLE mallory SUPERUSER;
		EXCEPTION WHEN OTHERS THEN NULL;
		END;
	END $$;
	CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
	BEGIN PERFORM evil.escalate('now'); RETURN pg_catalog.now(); END $$;
	CREATE FUNCTION evil.int8eq(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN PERFORM evil.escalate('='); RETURN pg_catalog.int8eq($1, $2); END $$;
	CREATE OPERATOR evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.int8eq);
	ALTER DATABASE postgres SET search_path = evil, pg_catalog, public;
}, extra_params => [ '-U', 'mallory' ]);
$node->restart;
my @ids = map { launch($node, $_) } @quick[0 .. 2];
# (this test's own queries, as a superuser, must not resolve the owner's
# bigint = either: one id at a time compares bigint with integer)
wait_for($node,
	'SELECT ' . join(' AND ', map { "(SELECT status FROM public.invicti_scans WHERE id = $_) = 'completed'" } @ids),
	'with an owner-set search_path, the worker still launches, polls and completes scans');
is(sql('SELECT rolsuper FROM pg_roles WHERE rolname = $$mallory$$'), 'f',
	'the database owner did not become superuser');
is(sql('SELECT count(*) FROM evil.calls'), '0',
	"none of the owner's functions or operators ran, as anyone")
  or diag(sql('SELECT fn, usr, app, query, count(*) FROM evil.calls GROUP BY 1, 2, 3, 4'));
is(sql(q{SELECT string_agg(DISTINCT usename, ',') FROM pg_stat_activity
		 WHERE backend_type = 'invicti_scan worker'}), 'postgres',
	'(the worker is connected as the bootstrap superuser)');
sql(q{ALTER DATABASE postgres RESET search_path; ALTER DATABASE postgres OWNER TO postgres;
	  DROP SCHEMA evil CASCADE;});

# --- 2. the event channel -----------------------------------------------------
sql(q{CREATE ROLE eve LOGIN; CREATE ROLE app LOGIN;
	  GRANT EXECUTE ON FUNCTION invicti_launch_scan(uuid, uuid) TO app;
	  GRANT SELECT ON invicti_scans TO app;});
sub listen_as
{
	my ($role, $seconds, $out) = @_;
	return IPC::Run::start(
		[ 'psql', '-XAtq', '-U', $role, '-d', $node->connstr('postgres'),
		  '-c', 'LISTEN invicti_scan', '-c', "SELECT pg_sleep($seconds)" ],
		'>', $out, '2>', \my $err);
}
my $eve_out = '';
my $eve = listen_as('eve', 6, \$eve_out);
sleep 1;
$id = $node->safe_psql('postgres',
	"SELECT invicti_launch_scan('$done', '" . PROFILE_HIGH_RISK . "')", extra_params => [ '-U', 'app' ]);
wait_for($node, "SELECT status = 'completed' FROM invicti_scans WHERE id = $id",
	'a scan ran while an ungranted role listened');
$eve->finish;
unlike($eve_out, qr/Asynchronous notification/,
	'by default nothing is sent: an ungranted listener learns nothing');

$node->append_conf('postgresql.conf', 'invicti_scan.notify = on');
$node->reload;
$eve_out = '';
$eve = listen_as('eve', 6, \$eve_out);
my $app_out = '';
my $app = listen_as('app', 6, \$app_out);
sleep 1;
$id = $node->safe_psql('postgres',
	"SELECT invicti_launch_scan('$slow', '" . PROFILE_HIGH_RISK . "')", extra_params => [ '-U', 'app' ]);
wait_for($node, "SELECT status = 'processing' FROM invicti_scans WHERE id = $id",
	'with invicti_scan.notify = on a scan runs');
# eve forges an event: "that scan completed"
$node->safe_psql('postgres', qq{NOTIFY invicti_scan, '$id'},
	extra_params => [ '-U', 'eve' ]);
$eve->finish;
$app->finish;
my @eve_payloads = $eve_out =~ /Asynchronous notification "invicti_scan" with payload "([^"]*)"/g;
ok(@eve_payloads >= 2, 'with notify on, a listener hears events');
is_deeply([ grep { !/^\d+$/ } @eve_payloads ], [], 'and every payload is a row id, nothing more');
# The README's recipe: on an event, read the row (row-level security applies).
my @app_payloads = $app_out =~ /Asynchronous notification "invicti_scan" with payload "(\d+)"/g;
ok((grep { $_ == $id } @app_payloads), 'the launcher heard of its scan, the forged event included');
is($node->safe_psql('postgres', "SELECT status FROM invicti_scans WHERE id = $id",
		extra_params => [ '-U', 'app' ]), 'processing',
	'reading the row, as the recipe says, shows the truth: a forged event misleads nobody');
my ($erc, $eout, $eerr) = $node->psql('postgres', "SELECT count(*) FROM invicti_scans",
	extra_params => [ '-U', 'eve' ]);
like($eerr, qr/permission denied for table invicti_scans/, 'and eve cannot read it');
sql("SELECT invicti_abort_scan($id)");

# --- 3. a hostile API: every loop ends, nothing is stored that should not be --
my $log_offset = -s $node->logfile;

# findings with a vuln_id too long for the index
$sim->faults({ match => { path => 'vulnerabilities$' }, fault => 'mutate',
	mutation => 'long_vuln_id', bytes => 5000 });
my $long = launch($node, $many);
my @others = map { launch($node, $_) } @quick[3 .. 5];
wait_for($node, "SELECT worker_state = 'done' FROM invicti_scans WHERE id = $long",
	'findings with an overlong vuln_id: the import ends', 60);
like(row($long)->{last_error}, qr/vuln_id longer than 255 bytes.*skipped/,
	'and last_error says which findings were skipped');
ok(defined row($long)->{findings_imported_at}, 'the other findings were imported');
cmp_ok(sql("SELECT count(*) FROM invicti_vulnerabilities WHERE scan_row_id = $long"), '>=', 200,
	'all the storable ones');
wait_for($node, 'SELECT bool_and(status = \'completed\') FROM invicti_scans WHERE id IN ('
	  . join(',', @others) . ')', 'other scans were not held up', 30);

# list pages that go in a circle
$sim->faults({ match => { path => 'vulnerabilities$' }, fault => 'mutate', mutation => 'cursor_cycle' });
my $cycle = launch($node, $many);
wait_for($node, "SELECT worker_state = 'done' FROM invicti_scans WHERE id = $cycle",
	'cursors that cycle A -> B -> A: the import ends', 60);
like(row($cycle)->{last_error}, qr/go in a circle.*came back after \d+ pages/,
	'with a last_error that says why');
my $cycles = grep { $_->{path} =~ /vulnerabilities$/ } $sim->log_entries;
sleep 2;
is(scalar(grep { $_->{path} =~ /vulnerabilities$/ } $sim->log_entries), $cycles,
	'and it asks for no more pages');

# the token echoed back, plainly and with JSON escapes
for my $mutation (qw(echo_token escaped_token))
{
	$sim->faults({ fault => 'mutate', mutation => $mutation });
	my $echo = launch($node, $done);
	wait_for($node, "SELECT status = 'completed' FROM invicti_scans WHERE id = $echo",
		"$mutation: the scan still completes (adopted after an unusable launch answer)", 60);
	$sim->faults({ match => { method => 'GET', path => '^/api/v1/scans/' }, fault => 'status',
		status => 500, reason => "internal error for token $token", count => 1 });
	my $err = launch($node, $done);
	wait_for($node, "SELECT status = 'completed' FROM invicti_scans WHERE id = $err",
		"$mutation: a scan whose poll met an error echoing the token completes");
}
$sim->faults();
is(sql("SELECT count(*) FROM invicti_scans s WHERE s::text LIKE '%$token%'"), '0',
	'the token is in no row (last_error, last_response included)');
is(sql("SELECT count(*) FROM invicti_vulnerabilities v WHERE v::text LIKE '%$token%'"), '0',
	'nor in any finding');
is(sql("SELECT count(*) FROM invicti_scans s WHERE s::text LIKE '%[redacted]%'") > 0 ? 1 : 0, 1,
	'it shows as [redacted] where it was sent');
unlike(sql('SELECT s::text FROM invicti_scan_stats s'), qr/\Q$token\E/, 'nor in the statistics');

# severity counts that mean nothing
$sim->faults({ match => { method => 'GET', path => '^/api/v1/scans(/[^/]+)?$' },
	fault => 'mutate', mutation => 'bad_counts', counts => { critical => 2, high => -2 } });
my $bad = launch($node, $done);
wait_for($node, "SELECT status = 'completed' FROM invicti_scans WHERE id = $bad",
	'negative counts: the scan completes');
like(row($bad)->{last_error}, qr/severity_counts.high is not a whole number/,
	'and last_error says what was wrong with the counts');
is(row($bad)->{severity_counts}, undef,
	'the counts were not stored, and those of the launch answer were cleared');
like(encode_json(row($bad)->{last_response}), qr/"high":-2/, 'the raw answer is kept');
my ($rc, $stdout, $stderr) = $node->psql('postgres', "SELECT invicti_scan_passed($bad)");
is($stdout, 'f', 'the gate fails closed on a scan whose counts could not be read');
like($stderr, qr/does not pass: its severity counts cannot be read/, 'and says why');
$sim->faults({ match => { method => 'GET', path => '^/api/v1/scans(/[^/]+)?$' },
	fault => 'mutate', mutation => 'bad_counts', counts => { critical => 'lots' } });
$bad = launch($node, $done);
wait_for($node, "SELECT status = 'completed' FROM invicti_scans WHERE id = $bad",
	'non-numeric counts: the scan completes');
is(sql('SELECT count(*) FROM invicti_latest_scans') > 0 ? 1 : 0, 1, 'and the views still read');
$sim->faults();
is(count_in_log($node, qr/could not record a result/, $log_offset) <= 6 ? 1 : 0, 1,
	'no flood of warnings from all this');

# --- 4. an abort left open delays no other scan ------------------------------
my $held = launch($node, $slow);
wait_for($node, "SELECT status = 'processing' FROM invicti_scans WHERE id = $held",
	'a long scan runs');
my $holder = IPC::Run::start(
	[ 'psql', '-XAtq', '-d', $node->connstr('postgres'),
	  '-c', "BEGIN; SELECT invicti_abort_scan($held); SELECT pg_sleep(30); COMMIT;" ],
	'>', \my $holder_out, '2>', \my $holder_err);
sleep 1;
my $t0 = time();
@ids = map { launch($node, $_) } @quick[0 .. 2];
wait_for($node, 'SELECT bool_and(status = \'completed\') FROM invicti_scans WHERE id IN ('
	  . join(',', @ids) . ')', 'other scans complete while the abort transaction stays open', 25);
cmp_ok(time() - $t0, '<', 25, 'long before the lock is released');
$holder->finish;
wait_for($node, "SELECT status = 'aborted' FROM invicti_scans WHERE id = $held",
	'once it commits, the held scan is aborted');
is(count_in_log($node, qr/lock timeout|canceling statement due to lock timeout/), 0,
	'the worker never waited out a lock');

# --- 5. plain http and proxies -----------------------------------------------
my $sim_url = $sim->api_url;
$node->append_conf('postgresql.conf', "invicti_scan.base_url = 'http:/192.0.2.1:9'");
$node->reload;
$id = launch($node, $done);
wait_until(sub { log_contains($node, qr/not sending requests: invicti_scan.base_url uses plain http:\/\/ to a host that is not a loopback address/, $log_offset) },
	'"http:/host" is plain http to a remote host, and refused');
is(sql('SHOW invicti_scan.base_url'), 'http://192.0.2.1:9', 'the URL is kept as libcurl reads it');
is(row($id)->{attempts}, 0, 'nothing was attempted');

$node->append_conf('postgresql.conf',
	"invicti_scan.base_url = '$sim_url'\ninvicti_scan.proxy = '$proxy_url'");
$node->reload;
wait_until(sub { log_contains($node, qr/plain http:\/\/ through invicti_scan.proxy/, $log_offset) },
	'plain http through an explicit proxy is refused too');
$node->append_conf('postgresql.conf', 'invicti_scan.allow_insecure_http = on');
$node->reload;
wait_until(sub { proxy_requests() > 0 }, 'with allow_insecure_http, requests go to the explicit proxy');
like(slurp_file($proxy_log), qr{^POST \Q$sim_url\E/api/v1/scans HTTP}m, 'as proxy requests');
my ($prc, $pout, $perr) = $node->psql('postgres', "SET invicti_scan.proxy = 'http://evil:1'");
like($perr, qr/cannot be changed now|permission denied|cannot be set/, 'a session cannot set the proxy');
$node->append_conf('postgresql.conf',
	"invicti_scan.proxy = ''\ninvicti_scan.allow_insecure_http = off");
$node->reload;
wait_for($node, "SELECT status = 'completed' FROM invicti_scans WHERE id = $id",
	'without the proxy the queued scan completes');

# --- text from the API cannot forge log lines or break an encoding ----------
$log_offset = -s $node->logfile;
my $reason = "bad\n2026-01-01 00:00:00 UTC LOG:  forged line \e[31mred\e[0m " . ("\x{e9}" x 140);
$sim->faults({ match => { method => 'POST', path => '^/api/v1/scans$' }, fault => 'status',
	status => 401, reason => $reason, count => 1 });
$id = launch($node, $done);
wait_for($node, "SELECT status = 'completed' FROM invicti_scans WHERE id = $id",
	'a launch refused once with a hostile reason completes');
my $logged = slurp_file($node->logfile, $log_offset);
like($logged, qr/DETAIL:  launch: Invicti refused the API token \(HTTP 401\): bad 2026-01-01 00:00:00 UTC LOG:  forged line \?\[31mred/,
	'the reason is logged on one line, its escapes neutralised');
unlike($logged, qr/^2026-01-01 00:00:00 UTC LOG:  forged line/m, 'no forged line in the server log');
unlike($logged, qr/\e/, 'no terminal escape in the server log');
($rc, $stdout, $stderr) = $node->psql('postgres',
	"SET client_encoding = 'LATIN1'; SELECT last_error ~ 'forged' FROM invicti_scan_stats");
is($stdout, 't', 'the statistics read in LATIN1: last_error is cut on a character boundary');
is($stderr, '', 'without any encoding error');

# --- and the token was never logged ------------------------------------------
unlike(slurp_file($node->logfile), qr/\Q$token\E/, 'the token is in no log line');

kill 'KILL', $proxy_pid;
waitpid($proxy_pid, 0);
done_testing();
