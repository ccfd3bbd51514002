# Polling by list (issues 13 and 21): running scans are refreshed 99 at a
# time with GET /scans?q=scan_status:<the spec's running values>, every one
# within poll_interval, and scans that ended are read from the list of
# ended scans, so entering and leaving the running set costs no request of
# its own; no scan's end is lost when scans move between pages; a scan in a
# status the filter cannot name (paused) is fetched on its own; the worker
# falls back to scan-by-scan polling, visibly, when the server ignores the
# filter or leaves the sessions out of its list, and poll_method = list
# still refreshes every scan on a server that refuses the list; a failing
# list is retried, not abandoned; and invicti_refresh_scan() fetches one
# scan at once.
use strict;
use warnings;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use InvictiTest;

my $n = 250;    # three pages
my @running = map { target_uuid("list-run-$_") } 1 .. $n;
my @ending = map { target_uuid("list-end-$_") } 1 .. 40;
my $sim = start_simulator(
	targets => [ map { { target_id => $_, outcome => 'running' } } @running, @ending ]);
my $node = new_node('list', sim => $sim,
	settings => { 'invicti_scan.poll_interval' => "'2s'",
				  'invicti_scan.max_concurrent_requests' => 32 });
sub sql { $node->safe_psql('postgres', $_[0]) }
sub stats { decode_json(sql('SELECT row_to_json(s) FROM invicti_scan_stats s')) }

my @ids = launch_many($node, @running, @ending);
my %id_of;
@id_of{ @running, @ending } = @ids;
wait_for($node, "SELECT count(*) = " . scalar(@ids) . " FROM invicti_scans WHERE status = 'processing' AND progress = 49",
	'every scan is running (processing, at 49.5 %)', 120);
is(stats()->{poll_method}, 'list', 'the worker polls by list (poll_method auto)');

# --- steady state: pages, not requests per scan --------------------------------------
sleep 3;
my $seq = $sim->next_seq;
sleep 10;
my @log = $sim->log_entries($seq);
my @pages = grep { $_->{method} eq 'GET' && $_->{path} eq '/api/v1/scans' } @log;
my @gets = grep { $_->{method} eq 'GET' && $_->{path} =~ m{^/api/v1/scans/[^/]+$} } @log;
like($pages[0]{query} // '', qr/(^|&)q=scan_status:scheduled,queued,starting,processing,aborting(&|$)/,
	'the list asks for running scans only, in the values the spec\'s scan_status filter lists');
like($pages[0]{query} // '', qr/(^|&)l=99(&|$)/, '99 to a page (the spec: 1 < limit < 100)');
is(scalar(@gets), 0, 'no scan is fetched on its own while the list shows it');
# 290 scans: 3 pages a round, a round every 2 s
my $per_scan = scalar(@pages) / (scalar(@ids) * 10 / 2);
cmp_ok($per_scan, '<=', 0.02, sprintf('%.4f requests per running scan per poll interval (%d pages in 10 s)',
		$per_scan, scalar(@pages)));

# --- every row refreshed within poll_interval -----------------------------------------
my $sims = $sim->scans;
my %scan_of = map { $sims->{$_}{target_id} => $_ } keys %$sims;
$sim->control('POST', "/_sim/scans/$scan_of{$_}/force", { status => 'processing', progress => 42 })
  for @running;
my $t0 = time();
wait_for($node, "SELECT count(*) = $n FROM invicti_scans WHERE progress = 42",
	'a change to every scan reaches every row', 30);
my $took = time() - $t0;
cmp_ok($took, '<=', 2 * 2 + 2, sprintf('within one round of poll_interval (2 s): %.1f s', $took));

# --- scans moving between pages: no end is lost ---------------------------------------
# Each list request shifts the list by 7 (offset cursors then skip and repeat
# scans across pages), while 40 scans end at once.
$sim->config(list_churn => 7);
$seq = $sim->next_seq;
for my $t (@ending)
{
	$sim->control('POST', "/_sim/scans/$scan_of{$t}/force", { status => 'completed', progress => 100 });
}
wait_for($node, "SELECT count(*) = 40 FROM invicti_scans WHERE status = 'completed' AND worker_state = 'done'
	AND end_date IS NOT NULL AND findings_imported_at IS NOT NULL AND id IN (" . join(',', @id_of{@ending}) . ")",
	'every scan that ended while pages shifted is recorded completed, with its end date and findings', 60);
@log = $sim->log_entries($seq);
my %fetched = map { $_->{path} =~ m{^/api/v1/scans/([^/]+)$} ? ($1 => 1) : () }
  grep { $_->{method} eq 'GET' } @log;
is(scalar(grep { $fetched{ $scan_of{$_} } } @ending), 0,
	'no ended scan was fetched on its own: the list of ended scans showed each');
ok((grep { $_->{path} eq '/api/v1/scans' && ($_->{query} // '') =~ /(^|&)q=scan_status:completed,failed(&|$)/ } @log),
	'that list asks for completed and failed scans, the filter\'s ended values');
# a running scan the shifted pages skipped is fetched on its own, and stays running
$sim->control('POST', "/_sim/scans/$scan_of{$_}/force", { status => 'processing', progress => 43 })
  for @running;
wait_for($node, "SELECT count(*) = $n FROM invicti_scans WHERE progress = 43 AND status = 'processing'",
	'with pages shifting, every running scan still gets each change', 30);
is(sql("SELECT count(*) FROM invicti_scans WHERE last_error IS NOT NULL"), '0', 'and no row has an error');
$sim->config(list_churn => 0);

# --- a paused scan: the filter cannot name it, so it is fetched on its own ---------------
my $paused_t = $running[-1];
$sim->control('POST', "/_sim/scans/$scan_of{$paused_t}/force", { status => 'paused', progress => 50 });
wait_for($node, "SELECT status = 'paused' FROM invicti_scans WHERE id = $id_of{$paused_t}",
	'a scan that is paused is recorded paused');
$seq = $sim->next_seq;
sleep 5;
@log = $sim->log_entries($seq);
cmp_ok(scalar(grep { $_->{path} eq "/api/v1/scans/$scan_of{$paused_t}" } @log), '>=', 2,
	'and, listed by no filter value, fetched on its own every poll_interval');
$sim->control('POST', "/_sim/scans/$scan_of{$paused_t}/force", { status => 'processing', progress => 44 });
wait_for($node, "SELECT status = 'processing' FROM invicti_scans WHERE id = $id_of{$paused_t}",
	'and back on the list once it runs again');

# --- entering and leaving the running set: no request of its own ---------------------
my @short = map { target_uuid("list-short-$_") } 1 .. 30;
$sim->targets(map { { target_id => $_, outcome => 'completed', duration_scale => 20 } } @short);
$seq = $sim->next_seq;
my @short_ids = launch_many($node, @short);
wait_for($node, "SELECT count(*) = 30 FROM invicti_scans WHERE worker_state = 'done' AND status = 'completed'
	AND id IN (" . join(',', @short_ids) . ")", '30 short scans launched, run and ended', 120);
@log = $sim->log_entries($seq);
my %short_scan = map { $_ => 1 } split /\n/, sql("SELECT scan_id FROM invicti_scans WHERE id IN (" . join(',', @short_ids) . ")");
is(scalar(grep { $_->{method} eq 'GET' && $_->{path} =~ m{^/api/v1/scans/([^/]+)$} && $short_scan{$1} } @log), 0,
	'none of them was fetched on its own: the 201, the running list and the ended list said it all');

# --- a failing list is retried, never abandoned ----------------------------------------
$sim->faults({ match => { method => 'GET', path => '^/api/v1/scans$' }, fault => 'status', status => 500, count => 3 });
$seq = $sim->next_seq;
$sim->control('POST', "/_sim/scans/$scan_of{$_}/force", { status => 'processing', progress => 44 })
  for @running;
wait_for($node, "SELECT count(*) = $n FROM invicti_scans WHERE progress = 44",
	'after three failed list pages, the next round refreshes every row', 60);
@log = $sim->log_entries($seq);
is(scalar(grep { $_->{path} =~ m{^/api/v1/scans/[^/]+$} } @log), 0,
	'a failed page sends no request per scan (no burst)');
is(stats()->{poll_method}, 'list', 'a 5xx is no reason to stop listing');
ok(stats()->{requests_by_kind}{poll_list}{server_error} >= 3, 'the failed pages are counted (poll_list: server_error)');
is(sql("SELECT count(*) FROM invicti_scans WHERE last_error IS NOT NULL"), '0', 'and written to no row');

# --- refresh on demand -------------------------------------------------------------------
$node->append_conf('postgresql.conf', "invicti_scan.poll_interval = '1h'");
$node->reload;
sleep 4;    # the rounds due under the old interval pass; the next is an hour away
my $one = $id_of{ $running[0] };
$sim->control('POST', "/_sim/scans/$scan_of{$running[0]}/force", { status => 'processing', progress => 77 });
$seq = $sim->next_seq;
is(sql("SELECT invicti_refresh_scan($one)"), 't', 'invicti_refresh_scan() queues a refresh of a running scan');
wait_for($node, "SELECT progress = 77 FROM invicti_scans WHERE id = $one",
	'the scan is refreshed at once, whatever poll_interval says', 10);
# a refresh always asks the API after the call; calls in quick succession
# share one request five seconds after the last
sql("SELECT invicti_refresh_scan($one)") for 1 .. 20;
sleep 7;
@log = $sim->log_entries($seq);
is(scalar(@log), 2, 'twenty-one calls in a second cost two requests')
  or diag(join("\n", map { "$_->{method} $_->{path}?" . ($_->{query} // '') } @log));
is(scalar(grep { $_->{path} eq "/api/v1/scans/$scan_of{$running[0]}" } @log), 2,
	'GETs of that scan through the API');
cmp_ok($log[1]{time} - $log[0]{time}, '>=', 4.9, 'five seconds apart');
my $by_uuid = $scan_of{ $running[1] };
$sim->control('POST', "/_sim/scans/$by_uuid/force", { status => 'processing', progress => 78 });
is(sql("SELECT invicti_refresh_scan('$by_uuid'::uuid)"), 't', 'by scan_id too');
wait_for($node, "SELECT progress = 78 FROM invicti_scans WHERE scan_id = '$by_uuid'",
	'refreshed by scan_id', 10);
my $ended = $id_of{ $ending[0] };
is(sql("SELECT invicti_refresh_scan($ended)"), 'f', 'a finished scan: nothing to refresh (false)');
my ($rc, $out, $err) = $node->psql('postgres', 'SELECT invicti_refresh_scan(-1)');
like($err, qr/scan -1 does not exist/, 'an unknown id: a clear error');
($rc, $out, $err) = $node->psql('postgres', 'SELECT invicti_refresh_scan(NULL::bigint)');
like($err, qr/id must not be null/, 'NULL: a clear error');
sql(q{CREATE ROLE list_stranger LOGIN;
	  GRANT EXECUTE ON FUNCTION invicti_refresh_scan(bigint) TO list_stranger;
	  CREATE ROLE list_reader LOGIN IN ROLE invicti_scan_read_all;
	  GRANT EXECUTE ON FUNCTION invicti_refresh_scan(bigint) TO list_reader;
	  CREATE ROLE list_nobody LOGIN});
($rc, $out, $err) = $node->psql('postgres', "SELECT invicti_refresh_scan($one)",
	extra_params => [ '-U', 'list_nobody' ]);
like($err, qr/permission denied for function invicti_refresh_scan/, 'not granted: permission denied');
($rc, $out, $err) = $node->psql('postgres', "SELECT invicti_refresh_scan($one)",
	extra_params => [ '-U', 'list_stranger' ]);
like($err, qr/scan $one does not exist/, 'granted, but not its scan: it does not exist for that role');
is($node->safe_psql('postgres', "SELECT invicti_refresh_scan($one)", extra_params => [ '-U', 'list_reader' ]),
	't', 'a member of invicti_scan_read_all may refresh any scan');
cmp_ok(stats()->{refresh_requests}, '>=', 3, 'the stats count the refreshes queued');
$node->append_conf('postgresql.conf', "invicti_scan.poll_interval = '2s'");
$node->reload;

# --- falling back: a server that ignores the filter ---------------------------------------
my $offset = -s $node->logfile;
$sim->config(scan_filter => 'ignore');
wait_until(sub { stats()->{poll_method} =~ /^scan \(fallback: .*ignores the scan_status filter/ },
	'a server that ignores the filter: the worker polls scan by scan, and says why', 30);
ok(log_contains($node, qr/LOG:  invicti_scan worker: polling scan by scan from now on: the server lists a scan with status "completed"/, $offset),
	'with a LOG line naming the reason');
$seq = $sim->next_seq;
$sim->control('POST', "/_sim/scans/$scan_of{$_}/force", { status => 'processing', progress => 45 })
  for @running;
wait_for($node, "SELECT count(*) = $n FROM invicti_scans WHERE progress = 45",
	'scan by scan, every row is still refreshed', 60);
@log = $sim->log_entries($seq);
is(scalar(grep { $_->{path} eq '/api/v1/scans' } @log), 0, 'no more lists');
$sim->config(scan_filter => 'honour');
$node->reload;
wait_until(sub { stats()->{poll_method} eq 'list' }, 'a reload tries the list again', 30);

# --- falling back: a list without current_session ----------------------------------------
$sim->config(list_session => 'omit');
wait_until(sub { stats()->{poll_method} =~ /^scan \(fallback: the server lists scans without their current_session\)$/ },
	'a list without sessions: scan by scan', 30);
$sim->config(list_session => 'full');
$node->reload;
wait_until(sub { stats()->{poll_method} eq 'list' }, 'and back to the list after a reload', 30);

# --- falling back: a server that refuses the filtered list -------------------------------
$sim->faults({ match => { method => 'GET', path => '^/api/v1/scans$' }, fault => 'status', status => 400 });
wait_until(sub { stats()->{poll_method} =~ /^scan \(fallback: the server refused the filtered scan list \(HTTP 400\)\)$/ },
	'a 400 for the filtered list: scan by scan', 30);

# --- poll_method = list, on a server that refuses the list: still every row refreshed ----
$node->append_conf('postgresql.conf', "invicti_scan.poll_method = 'list'");
$node->reload;
wait_until(sub { stats()->{poll_method} eq 'list' }, 'poll_method = list: listing', 30);
$sim->control('POST', "/_sim/scans/$scan_of{$_}/force", { status => 'processing', progress => 47 })
  for @running;
wait_for($node, "SELECT count(*) = $n FROM invicti_scans WHERE progress = 47",
	'the list refused: each scan is fetched on its own, and every row is refreshed', 60);
$sim->faults();

# --- poll_method = list keeps listing, even past a server that ignores the filter ---------
$sim->config(scan_filter => 'ignore');
$sim->control('POST', "/_sim/scans/$scan_of{$_}/force", { status => 'processing', progress => 46 })
  for @running;
wait_for($node, "SELECT count(*) = $n FROM invicti_scans WHERE progress = 46",
	'with the filter ignored, the list still refreshes every row', 60);
is(stats()->{poll_method}, 'list', 'and the worker does not fall back');
is(sql("SELECT count(*) FROM invicti_scans WHERE status = 'completed' AND id IN (" . join(',', @id_of{@ending}) . ")"),
	'40', 'finished scans the list now shows stay as they were');

# --- poll_method = scan ------------------------------------------------------------------
$node->append_conf('postgresql.conf', "invicti_scan.poll_method = 'scan'");
$node->reload;
wait_until(sub { stats()->{poll_method} eq 'scan' }, 'poll_method = scan: scan by scan', 30);

done_testing();
