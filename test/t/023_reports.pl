# Reports from SQL against the simulator: requested with a template by name,
# polled until ready, the file downloaded and stored byte for byte (PDF and
# HTML), read back through invicti_report_content() only by roles that may
# read every scan it covers; a report the server fails, one that never gets
# ready, one over the size limit and refused requests end as rows with
# readable errors.
use strict;
use warnings;
use Digest::SHA qw(sha256_hex);
use JSON::PP;
use MIME::Base64 qw(decode_base64);
use PostgreSQL::Test::Utils;
use Test::More;
use InvictiTest;

my @targets = map { target_uuid("report-$_") } 1 .. 3;
my $sim = start_simulator(time_scale => 0.05,
	targets => [ map { { target_id => $_, outcome => 'completed' } } @targets ]);
my $node = new_node('reports', sim => $sim, settings => { restart_after_crash => 'on' });

sub q1 { return $node->safe_psql('postgres', $_[0]) }

$node->safe_psql('postgres', q{
	CREATE ROLE alice; CREATE ROLE bob; CREATE ROLE auditor IN ROLE invicti_scan_read_all;
	GRANT EXECUTE ON FUNCTION invicti_launch_scan(uuid, uuid), invicti_request_report(bigint[], text, text),
	                          invicti_report_content(bigint) TO alice, bob, auditor;
	GRANT SELECT ON invicti_scans, invicti_reports TO alice, bob;
	SELECT invicti_sync();
});
wait_for($node, "SELECT succeeded_at IS NOT NULL FROM invicti_sync_status WHERE catalog = 'report_templates'",
	'the report templates are synced');

sub as
{
	my ($role, $sql) = @_;
	return q1("SET ROLE $role; $sql");
}

my $a1 = as('alice', "SELECT invicti_launch_scan('$targets[0]'::uuid, '" . InvictiTest::PROFILE_HIGH_RISK . "'::uuid)");
my $a2 = as('alice', "SELECT invicti_launch_scan('$targets[1]'::uuid, '" . InvictiTest::PROFILE_HIGH_RISK . "'::uuid)");
my $b1 = as('bob', "SELECT invicti_launch_scan('$targets[2]'::uuid, '" . InvictiTest::PROFILE_HIGH_RISK . "'::uuid)");
wait_for($node, "SELECT bool_and(worker_state = 'done' AND status = 'completed') FROM invicti_scans",
	'the scans completed', 90);

# The file as the simulator serves it, by the report's download entry.
sub sim_file
{
	my ($report_id, $ext) = @_;
	my $r = $sim->control('GET', "/_sim/reports/$report_id");
	my ($path) = grep { /\.\Q$ext\E$/ } @{ $r->{download} };
	my $res = HTTP::Tiny->new->get($sim->api_url . $path, { headers => { 'X-Auth' => InvictiTest::TOKEN } });
	die "download $path: $res->{status}" unless $res->{success};
	return $res->{content};
}

sub wait_report
{
	my ($id, $what, $want) = @_;
	wait_for($node, "SELECT status IN ('ready', 'failed') FROM invicti_reports WHERE id = $id",
		"$what: the report is $want", 60);
	return q1("SELECT status FROM invicti_reports WHERE id = $id");
}

# ---- a PDF of two scans, Developer template by name ----------------------
my $seq = $sim->next_seq;
my $pdf = as('alice', "SELECT invicti_request_report(ARRAY[$a1, $a2])");
is(wait_report($pdf, 'pdf', 'ready'), 'ready', 'pdf: ready');
my %row = split /\|/, q1("SELECT 'report_id|' || report_id || '|size|' || size || '|type|' || content_type
	|| '|api|' || api_status || '|template|' || template_name FROM invicti_reports WHERE id = $pdf");
my $sim_report = $sim->control('GET', "/_sim/reports/$row{report_id}");
is($sim_report->{template_id}, '11111111-1111-1111-1111-111111111111', 'pdf: the Developer template, resolved by name');
is_deeply([ sort @{ $sim_report->{source}{id_list} } ],
	[ sort map { scan_row($node, $_)->{scan_id} } $a1, $a2 ],
	'pdf: the source is the two scans, by their Invicti ids');
is($sim_report->{source}{list_type}, 'scans', 'pdf: list_type scans');
my $file = sim_file($row{report_id}, 'pdf');
my $stored = decode_base64(as('alice', "SELECT encode(invicti_report_content($pdf), 'base64')"));
is(length($stored), length($file), "pdf: the stored file has the server's size ($row{size} bytes)");
is(sha256_hex($stored), sha256_hex($file), 'pdf: byte for byte the file the server serves');
is($row{size}, length($file), 'pdf: size column');
is($row{type}, 'application/pdf', 'pdf: content_type as served');
is("$row{api}/$row{template}", 'completed/Developer', 'pdf: the API status and the template name');
my @log = $sim->log_entries($seq);
is(scalar(grep { $_->{method} eq 'POST' && $_->{path} eq '/api/v1/reports' } @log), 1, 'pdf: one POST /reports');
ok((grep { $_->{method} eq 'GET' && $_->{path} =~ m{^/api/v1/reports/download/[0-9a-f]+\.pdf$} } @log),
	'pdf: the download came from the API, by its descriptor');

# the README's recipe: the bytes through psql, base64
my $b64 = `psql -XAtq -h @{[ $node->host ]} -p @{[ $node->port ]} -d postgres -c "SET ROLE alice; SELECT encode(invicti_report_content($pdf), 'base64')"`;
is(sha256_hex(decode_base64($b64)), sha256_hex($file), 'psql and base64 give the same bytes');

# ---- HTML, another template by id, with download_auth required ------------
$sim->config(download_auth => 'required');
my $html = as('alice', "SELECT invicti_request_report(ARRAY[$a1], '11111111-1111-1111-1111-111111111113', 'html')");
is(wait_report($html, 'html', 'ready'), 'ready', 'html: ready, with the token on the download');
my $html_id = q1("SELECT report_id FROM invicti_reports WHERE id = $html");
is(sha256_hex(decode_base64(as('alice', "SELECT encode(invicti_report_content($html), 'base64')"))),
	sha256_hex(sim_file($html_id, 'html')), 'html: byte for byte');
like(q1("SELECT content_type FROM invicti_reports WHERE id = $html"), qr{^text/html}, 'html: content_type');
$sim->config(download_auth => 'none');

# ---- a server that points the download at another host -------------------
$sim->config(download_links => 'foreign');
$seq = $sim->next_seq;
my $foreign = as('alice', "SELECT invicti_request_report(ARRAY[$a1])");
is(wait_report($foreign, 'foreign download links', 'ready'), 'ready',
	'download links on another host: the file is fetched from base_url all the same');
ok((grep { $_->{path} =~ m{^/api/v1/reports/download/[0-9a-f]+\.pdf$} } $sim->log_entries($seq)),
	'by its descriptor alone: the token never goes to the host the API named');
$sim->config(download_links => 'path');

# ---- who reads what -------------------------------------------------------
my $mixed = as('auditor', "SELECT invicti_request_report(ARRAY[$a1, $b1])");
is(wait_report($mixed, 'mixed', 'ready'), 'ready', 'a report of alice\'s and bob\'s scans');
is(as('alice', "SELECT string_agg(id::text, ',' ORDER BY id) FROM invicti_reports"), "$pdf,$html,$foreign",
	'alice sees her reports, not the one that covers bob\'s scan too');
is(as('bob', "SELECT count(*) FROM invicti_reports"), 0, 'bob sees none');
is(as('auditor', "SELECT count(*) FROM invicti_reports"), 4, 'invicti_scan_read_all sees all');
my ($rc, $out, $err) = $node->psql('postgres', "SET ROLE bob; SELECT invicti_report_content($pdf)");
like($err, qr/report $pdf does not exist/, 'bob cannot fetch alice\'s report');
($rc, $out, $err) = $node->psql('postgres', "SET ROLE bob; SELECT invicti_request_report(ARRAY[$a1])");
like($err, qr/scan $a1 does not exist/, 'bob cannot ask for a report of alice\'s scan');

# ---- failures are rows with readable errors -------------------------------
$sim->config(report_outcome => 'failed');
my $failed = as('alice', "SELECT invicti_request_report(ARRAY[$a1])");
is(wait_report($failed, 'failed on the server', 'failed'), 'failed', 'a report the server fails');
like(q1("SELECT last_error FROM invicti_reports WHERE id = $failed"),
	qr/could not generate the report \(status failed\)/, 'says so');
($rc, $out, $err) = $node->psql('postgres', "SET ROLE alice; SELECT invicti_report_content($failed)");
like($err, qr/report $failed is not ready: its status is failed.*could not generate/s,
	'invicti_report_content() says why there is no file');

$sim->config(report_outcome => 'stuck');
$node->append_conf('postgresql.conf', "invicti_scan.report_timeout = '3s'");
$node->reload;
my $stuck = as('alice', "SELECT invicti_request_report(ARRAY[$a1])");
is(wait_report($stuck, 'never ready', 'failed'), 'failed', 'a report that never gets ready fails');
like(q1("SELECT last_error FROM invicti_reports WHERE id = $stuck"),
	qr/not ready within invicti_scan.report_timeout \(3 s\); its status was processing/,
	'after report_timeout, naming the last status');
$sim->config(report_outcome => 'completed');
# (back to the default: a slow machine, valgrind, must not time out the rest)
$node->append_conf('postgresql.conf', "invicti_scan.report_timeout = '1h'");
$node->reload;

$sim->config(report_size => 300000);
$node->append_conf('postgresql.conf', "invicti_scan.max_report_size = '100kB'");
$node->reload;
my $big = as('alice', "SELECT invicti_request_report(ARRAY[$a1])");
is(wait_report($big, 'too large', 'failed'), 'failed', 'a file over max_report_size fails');
like(q1("SELECT last_error || ' ' || (content IS NULL) FROM invicti_reports WHERE id = $big"),
	qr/larger than invicti_scan.max_report_size \(100 kB\); it was not stored true/, 'and nothing is stored');
$sim->config(report_size => 0);

$sim->faults({ match => { method => 'POST', path => '^/api/v1/reports$' }, fault => 'status',
	status => 500, count => 1 });
my $retried = as('alice', "SELECT invicti_request_report(ARRAY[$a1])");
is(wait_report($retried, 'after a 500', 'ready'), 'ready', 'a 500 on the request is asked again, then ready');

$sim->faults({ match => { method => 'POST', path => '^/api/v1/reports$' }, fault => 'status',
	status => 400, reason => 'Source not allowed', count => 1 });
my $refused = as('alice', "SELECT invicti_request_report(ARRAY[$a1])");
is(wait_report($refused, 'refused', 'failed'), 'failed', 'a 400 fails the report');
like(q1("SELECT last_error FROM invicti_reports WHERE id = $refused"),
	qr/report request.*HTTP 400.*Source not allowed/, 'with the API\'s reason');
$sim->faults();

# ---- the worker dies while a report is being generated -------------------
$sim->faults({ match => { method => 'GET', path => '^/api/v1/reports/' }, fault => 'latency', ms => 2000 });
my $killed = as('alice', "SELECT invicti_request_report(ARRAY[$a2])");
wait_for($node, "SELECT status = 'generating' FROM invicti_reports WHERE id = $killed",
	'the report is being generated');
kill_worker($node);
$sim->faults();
is(wait_report($killed, 'after SIGKILL', 'ready'), 'ready', 'after a SIGKILL the report is still fetched');

done_testing();
