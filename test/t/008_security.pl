# The token stays secret and the worker goes nowhere it should not: the
# token is invisible to every role and in every log line up to DEBUG5; it can
# come from a file only the server reads; requests go only to base_url over
# verified TLS (or loopback http); redirects are never followed.
use strict;
use warnings;
use IO::Socket::INET;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use InvictiTest;

my $done = target_uuid('security-done');
my $sim = start_simulator(targets => [ { target_id => $done, outcome => 'completed' } ]);
# SSLKEYLOGFILE in the server's environment would make libcurl write the
# TLS keys of every request (and so the token) to that file.
my $keylog = PostgreSQL::Test::Utils::tempdir('keylog') . '/keys.txt';
my $node;
{
	local $ENV{SSLKEYLOGFILE} = $keylog;
	$node = new_node('security', sim => $sim,
		settings => { log_min_messages => 'debug5', log_statement => "'none'" });
}
my $token = TOKEN;

# --- the token is invisible to every role -----------------------------------
$node->safe_psql('postgres', q{
	CREATE ROLE ordinary LOGIN;
	CREATE ROLE launcher LOGIN;
	GRANT EXECUTE ON FUNCTION invicti_launch_scan(uuid, uuid) TO launcher;
	GRANT SELECT ON invicti_scans TO launcher;
});
my $id = $node->safe_psql('postgres',
	"SET ROLE launcher; SELECT invicti_launch_scan('$done', '" . PROFILE_HIGH_RISK . "')");
wait_for($node, "SELECT status = 'completed' FROM invicti_scans WHERE id = $id",
	'a scan ran with the token');

for my $role (qw(ordinary launcher))
{
	for my $q ('SHOW invicti_scan.api_token',
		"SELECT current_setting('invicti_scan.api_token')",
		"SELECT current_setting('invicti_scan.api_token_file')")
	{
		my ($rc, $out, $err) = $node->psql('postgres', $q,
			extra_params => [ '-U', $role ]);
		isnt($rc, 0, "$role: '$q' is refused");
		like($err, qr/must be superuser or have privileges of pg_read_all_settings|permission denied to examine/,
			"$role: '$q' says why");
		unlike($out . $err, qr/\Q$token\E/, "$role: '$q' shows no token");
	}
	for my $q ("SELECT string_agg(name || '=' || setting, ',') FROM pg_settings WHERE name LIKE 'invicti_scan.%'",
		"SELECT string_agg(name || '=' || coalesce(setting, ''), ',') FROM pg_file_settings",
		"SELECT string_agg(coalesce(query, ''), ',') FROM pg_stat_activity",
		"SELECT string_agg(s::text, ',') FROM invicti_scans s")
	{
		my ($rc, $out, $err) = $node->psql('postgres', $q,
			extra_params => [ '-U', $role ]);
		unlike($out . $err, qr/\Q$token\E/, "$role: no token from: $q");
	}
	my ($rc, $out) = $node->psql('postgres',
		"SELECT count(*) FROM pg_settings WHERE name IN ('invicti_scan.api_token', 'invicti_scan.api_token_file', 'invicti_scan.ca_file')",
		extra_params => [ '-U', $role ]);
	is($out, '0', "$role: the secret settings are not listed in pg_settings");
}

# Not even a superuser sees it, and neither does the worker's own activity.
is($node->safe_psql('postgres', 'SHOW invicti_scan.api_token'), '********',
	'superuser: SHOW only says a token is set');
is($node->safe_psql('postgres',
		"SELECT setting || reset_val || coalesce(boot_val, '') FROM pg_settings WHERE name = 'invicti_scan.api_token'"),
	'****************', 'superuser: pg_settings holds only the mask');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity
		 WHERE backend_type = 'invicti_scan worker' AND query LIKE '%$token%'"),
	'0', "the worker's pg_stat_activity.query never holds the token");

# Changing the token logs no value on reload; a refused token is logged
# without it.
my $new_token = 'second-secret-7d41c0ffee';
$node->append_conf('postgresql.conf', "invicti_scan.api_token = '$new_token'");
$node->reload;
$id = launch($node, $done);
wait_for($node, "SELECT last_error LIKE '%HTTP 401%' FROM invicti_scans WHERE id = $id",
	'the new (wrong) token is refused');

# --- the token from a file ---------------------------------------------------
my $file = $node->data_dir . '/invicti.token';
PostgreSQL::Test::Utils::append_to_file($file, "$token\n");
chmod 0644, $file;
$node->append_conf('postgresql.conf', "invicti_scan.api_token_file = '$file'");
$node->reload;
wait_for($node, "SELECT true", 'reloaded with a world-readable token file');
sleep 1;
ok(log_contains($node, qr/api_token_file is accessible to other users; make it mode 0600/),
	'a token file others can read is refused, with the fix in the message');
chmod 0600, $file;
$node->reload;
wait_for($node, "SELECT status = 'completed' FROM invicti_scans WHERE id = $id",
	'a private token file overrides api_token and works');

unlink $file;
$node->reload;
$id = launch($node, $done);
sleep 2;
is(scan_row($node, $id)->{status}, 'pending', 'a missing token file stops launches');
ok(log_contains($node, qr/api_token_file cannot be opened/), 'and the log says why');
PostgreSQL::Test::Utils::append_to_file($file, "$token\n");
chmod 0600, $file;
$node->reload;
wait_for($node, "SELECT status = 'completed' FROM invicti_scans WHERE id = $id",
	'the restored token file is read on reload');

# --- redirects are never followed -------------------------------------------
# A server that redirects everything to the simulator: following it would
# carry X-Auth to another host.
my $redirector = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
	Listen => 16, ReuseAddr => 1) or die "listen: $!";
my $redirect_pid = fork() // die;
if ($redirect_pid == 0)
{
	while (my $c = $redirector->accept)
	{
		while (my $line = <$c>) { last if $line =~ /^\r?\n$/ }
		print $c "HTTP/1.1 302 Found\r\nLocation: " . $sim->api_url
		  . "/api/v1/scans\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
		close $c;
	}
	exit 0;
}
my $seq = $sim->next_seq;
$node->append_conf('postgresql.conf',
	"invicti_scan.base_url = 'http://127.0.0.1:" . $redirector->sockport . "'");
$node->reload;
$id = launch($node, $done);
wait_for($node, "SELECT last_error LIKE '%HTTP 302%' FROM invicti_scans WHERE id = $id",
	'a redirect is reported, not followed');
is(scalar($sim->log_entries($seq)), 0, 'nothing reached the redirect target');
kill 'KILL', $redirect_pid;
waitpid($redirect_pid, 0);

# --- plain http only to loopback, unless explicitly allowed -----------------
my $offset = -s $node->logfile;
$node->append_conf('postgresql.conf', "invicti_scan.base_url = 'http://192.0.2.1:9'");
$node->reload;
$id = launch($node, $done);
wait_for($node, 'SELECT true', 'reloaded with a non-loopback http URL');
sleep 1;
ok(log_contains($node, qr/not sending requests: invicti_scan.base_url uses plain http:\/\/ to a host that is not a loopback address/, $offset),
	'non-loopback http is refused with a WARNING');
is(scan_row($node, $id)->{attempts}, 0, 'nothing was attempted over plain http');
$node->append_conf('postgresql.conf',
	"invicti_scan.allow_insecure_http = on\ninvicti_scan.request_timeout = '1s'");
$node->reload;
wait_for($node,
	"SELECT attempts > 0 AND status = 'pending' FROM invicti_scans WHERE id = $id",
	'allow_insecure_http = on lets the worker try (and the unreachable host keeps it pending)');

# --- TLS: peer and host name verified; a private CA through ca_file ----------
my $tls = PostgreSQL::Test::Utils::tempdir('tls');
system('openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
	'-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
	'-keyout', "$tls/key.pem", '-out', "$tls/cert.pem") == 0
  or die 'openssl failed';
chmod 0644, "$tls/cert.pem", "$tls/key.pem";
my $tls_sim = start_simulator(seed => 2, tls_cert => "$tls/cert.pem", tls_key => "$tls/key.pem",
	targets => [ { target_id => $done, outcome => 'completed' } ]);
$node->append_conf('postgresql.conf',
	"invicti_scan.base_url = '" . $tls_sim->api_url . "'\n"
	  . "invicti_scan.allow_insecure_http = off\n"
	  . "invicti_scan.request_timeout = '3s'");
$node->reload;
$id = launch($node, $done);
wait_for($node,
	"SELECT last_error ~* 'certificate' AND status = 'pending' FROM invicti_scans WHERE id = $id",
	'an unknown CA fails verification and the launch stays pending');
is(scalar($tls_sim->launches), 0, 'nothing was sent to an unverified server');

(my $by_name = $tls_sim->api_url) =~ s/127\.0\.0\.1/localhost/;
$node->append_conf('postgresql.conf',
	"invicti_scan.ca_file = '$tls/cert.pem'\ninvicti_scan.base_url = '$by_name'");
$node->reload;
wait_for($node,
	"SELECT last_error ~* 'name|match' FROM invicti_scans WHERE id = $id",
	'a certificate for another host name is refused');
is(scalar($tls_sim->launches), 0, 'still nothing sent');

$node->append_conf('postgresql.conf',
	"invicti_scan.base_url = '" . $tls_sim->api_url . "'");
$node->reload;
wait_for($node, "SELECT status = 'completed' FROM invicti_scans WHERE id = $id",
	'with the private CA in ca_file the scan runs over TLS');

# --- TLS keys are never written, whatever the environment says -------------
ok(log_contains($node, qr/ignoring SSLKEYLOGFILE from the server's environment/),
	'the worker says it ignores SSLKEYLOGFILE');
ok(!-e $keylog, 'and no TLS key was written to it, though requests went over TLS');

# --- and through all of this, no log line ever held a token -----------------
my $log = slurp_file($node->logfile);
cmp_ok(length($log), '>', 100_000, 'the DEBUG5 log is substantial');
unlike($log, qr/\Q$token\E/, 'the token is in no log line at DEBUG5');
unlike($log, qr/\Q$new_token\E/, 'nor is the second token');

done_testing();
