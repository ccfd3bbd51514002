# Stopping scans and importing what they found: invicti_abort_scan() in
# every state a row can be in, and the import of findings from completed
# scans, page by page and exactly once per session, across a crash.
use strict;
use warnings;
use HTTP::Tiny;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use InvictiTest;

my $slow = target_uuid('abort-slow');
my $done = target_uuid('findings-done');
my $many = target_uuid('findings-many');
my %many_counts = (critical => 20, high => 60, medium => 50, low => 40, info => 30);
my $sim = start_simulator(
	targets => [
		{ target_id => $slow, outcome => 'completed', duration_scale => 60 },
		{ target_id => $done, outcome => 'completed' },
		{ target_id => $many, outcome => 'completed', severity_counts => \%many_counts },
	]);
my $node = new_node('abort', sim => $sim, settings => { restart_after_crash => 'on' });

sub row { scan_row($node, $_[0]) }
sub sql { $node->safe_psql('postgres', $_[0]) }
sub posts_to
{
	my ($suffix, $since) = @_;
	return scalar grep { $_->{method} eq 'POST' && $_->{path} =~ m{/\Q$suffix\E$} }
	  $sim->log_entries($since // 0);
}

# --- a running scan is aborted through the API -------------------------------
my $id = launch($node, $slow);
wait_for($node, "SELECT status = 'processing' FROM invicti_scans WHERE id = $id",
	'a long scan is processing');
my $scan_id = row($id)->{scan_id};
is(sql("SELECT invicti_abort_scan($id)"), 'aborting', 'abort of a running scan returns aborting');
wait_for($node, "SELECT status = 'aborted' AND worker_state = 'done' FROM invicti_scans WHERE id = $id",
	'the row follows aborting -> aborted');
is(posts_to("$scan_id/abort"), 1, 'one POST /abort was sent');
is($sim->scans->{$scan_id}{status}, 'aborted', 'the scan is aborted on the server');
is(row($id)->{aborted_by}, 'postgres', 'aborted_by records the caller');
is(sql("SELECT count(*) FROM invicti_vulnerabilities WHERE scan_row_id = $id"), '0',
	'no findings are imported from an aborted scan');

# --- a pending scan is cancelled without any request -------------------------
$sim->faults({ match => { method => 'POST' }, fault => 'status', status => 429,
	retry_after => 30, count => 1 });
my $seq = $sim->next_seq;
my $throwaway = launch($node, $done);    # takes the 429: the API is paused 30 s
wait_for($node, "SELECT last_error LIKE '%429%' FROM invicti_scans WHERE id = $throwaway",
	'the API is paused by a 429');
$id = launch($node, $done);
is(sql("SELECT invicti_abort_scan($id)"), 'aborted', 'abort of a pending scan returns aborted');
is(row($id)->{worker_state}, 'done', 'the pending scan is finished at once');
is(sql("SELECT invicti_abort_scan($throwaway)"), 'aborted', 'and so is the one that met the 429');
$node->append_conf('postgresql.conf', "invicti_scan.poll_interval = '1s'");
$node->reload;    # ends the pause
sleep 2;
is(scalar(grep { $_->{method} eq 'POST' } $sim->log_entries($seq)), 1,
	'no request was sent for the cancelled scans (only the 429)');

# --- an abort while the launch is in flight ------------------------------------
$sim->faults({ match => { method => 'POST', path => '^/api/v1/scans$' },
	fault => 'latency', ms => 2000, when => 'after', count => 1 });
$id = launch($node, $slow);
wait_for($node, "SELECT worker_state = 'sending' FROM invicti_scans WHERE id = $id",
	'the launch is in flight');
is(sql("SELECT invicti_abort_scan($id)"), 'aborting', 'abort during the launch returns aborting');
wait_for($node, "SELECT status = 'aborted' FROM invicti_scans WHERE id = $id",
	'once launched, the scan is aborted', 60);
$scan_id = row($id)->{scan_id};
is(posts_to("$scan_id/abort"), 1, 'the abort went out after the launch');

# --- the scan finished on the server before the abort reached it --------------
$id = launch($node, $slow);
wait_for($node, "SELECT status = 'processing' FROM invicti_scans WHERE id = $id",
	'another long scan is processing');
$scan_id = row($id)->{scan_id};
$sim->control('POST', "/_sim/scans/$scan_id/force", { status => 'completed', progress => 100 });
$sim->faults({ match => { method => 'POST', path => 'abort$' }, fault => 'status', status => 409,
	count => 1 });
sql("SELECT invicti_abort_scan($id)");
wait_for($node, "SELECT status = 'completed' AND worker_state IN ('import', 'done') FROM invicti_scans WHERE id = $id",
	'a refused abort (409) leaves the status the API reports');

# --- the scan was deleted on the server ------------------------------------------
$id = launch($node, $slow);
wait_for($node, "SELECT status = 'processing' FROM invicti_scans WHERE id = $id",
	'a scan to delete is processing');
$scan_id = row($id)->{scan_id};
HTTP::Tiny->new->request('DELETE', $sim->api_url . "/api/v1/scans/$scan_id",
	{ headers => { 'X-Auth' => TOKEN } });
sql("SELECT invicti_abort_scan($id)");
wait_for($node, "SELECT worker_state = 'done' AND last_error LIKE '%no longer exists%HTTP 404%' FROM invicti_scans WHERE id = $id",
	'404 on abort: done, and last_error says so');

# --- findings of a completed scan --------------------------------------------
$id = launch($node, $done);
wait_for($node,
	"SELECT worker_state = 'done' AND findings_imported_at IS NOT NULL FROM invicti_scans WHERE id = $id",
	'findings of a completed scan are imported');
my $r = row($id);
my $expected = 0;
$expected += $_ for values %{ $r->{severity_counts} };
is(sql("SELECT count(*) FROM invicti_vulnerabilities WHERE scan_row_id = $id"), $expected,
	"one finding per counted vulnerability ($expected)");
is(sql("SELECT count(*) FROM invicti_vulnerabilities
		WHERE scan_row_id = $id AND scan_session_id = '$r->{scan_session_id}'
		  AND vuln_id IS NOT NULL AND vt_name IS NOT NULL AND severity BETWEEN 0 AND 4
		  AND affects_url LIKE 'https://%' AND status IN ('open', 'fixed', 'ignored', 'false_positive')
		  AND target_id = '$done' AND raw ? 'vuln_id'"),
	$expected, 'every finding has its fields and the raw item');
my %by_severity = split /[|\n]/, sql(
	"SELECT severity_name, count(*) FROM invicti_vulnerabilities WHERE scan_row_id = $id GROUP BY 1");
is_deeply({ map { $_ => $by_severity{$_} // 0 } keys %{ $r->{severity_counts} } },
	{ map { $_ => $r->{severity_counts}{$_} } keys %{ $r->{severity_counts} } },
	'findings per severity match severity_counts');

# --- 200 findings over three pages, with a crash in the middle ------------------
$sim->faults({ match => { method => 'GET', path => '/vulnerabilities$' },
	fault => 'latency', ms => 2000 });
$seq = $sim->next_seq;
$id = launch($node, $many);
wait_for($node,
	"SELECT import_cursor IS NOT NULL FROM invicti_scans WHERE id = $id",
	'the first page of findings is recorded, with the cursor of the next', 60);
is(sql("SELECT count(*) FROM invicti_vulnerabilities WHERE scan_row_id = $id"), '99',
	'99 findings after the first page (l=99: the spec says 1 < limit < 100)');
$node->stop('immediate');
$node->start;
$sim->faults();
wait_for($node, "SELECT findings_imported_at IS NOT NULL FROM invicti_scans WHERE id = $id",
	'the import resumes after the crash and finishes', 60);
is(sql("SELECT count(*), count(DISTINCT vuln_id) FROM invicti_vulnerabilities WHERE scan_row_id = $id"),
	'200|200', 'exactly 200 findings, each once');
my @pages = grep { $_->{path} =~ m{/vulnerabilities$} && $_->{status} == 200 } $sim->log_entries($seq);
like($pages[-1]{query}, qr/(^|&)c=/, 'the resumed import asked for the next page by cursor');

# --- a findings request refused for good ----------------------------------------
$sim->faults({ match => { method => 'GET', path => '/vulnerabilities$' },
	fault => 'status', status => 404, count => 1 });
$id = launch($node, $done);
wait_for($node,
	"SELECT worker_state = 'done' AND findings_imported_at IS NULL AND last_error LIKE '%findings not imported%'
	 FROM invicti_scans WHERE id = $id",
	'404 on findings: done, with a readable last_error');

# --- the import can be turned off ------------------------------------------------
$node->append_conf('postgresql.conf', 'invicti_scan.import_vulnerabilities = off');
$node->reload;
# a new session sees the setting once the postmaster has read the file, and
# the postmaster signals the worker before that: the launch below comes after
wait_for($node, "SELECT current_setting('invicti_scan.import_vulnerabilities') = 'off'",
	'the reload is read');
$seq = $sim->next_seq;
$id = launch($node, $done);
wait_for($node, "SELECT status = 'completed' AND worker_state = 'done' FROM invicti_scans WHERE id = $id",
	'with the import off a completed scan is simply done');
my @findings = grep { $_->{path} =~ /vulnerabilities/ } $sim->log_entries($seq);
is(scalar(@findings), 0, 'no findings were requested')
  or diag(join("\n", map { "$_->{method} $_->{path}?$_->{query}" } @findings));
is(sql("SELECT count(*) FROM invicti_vulnerabilities WHERE scan_row_id = $id"), '0', 'none stored');

done_testing();
