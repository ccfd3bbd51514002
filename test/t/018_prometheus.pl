# Monitoring with Prometheus: the real postgres_exporter (Debian's
# prometheus-postgres-exporter) runs monitoring/postgres_exporter.yaml
# against a cluster with scans in every kind of state, as a role with only
# the privileges the README asks for, and its /metrics must hold every
# series with the values SQL gives.  The example alert rules must name
# only series the exporter produces, and pass their own unit tests
# (promtool test rules monitoring/alerts_test.yaml).
use strict;
use warnings;
use File::Basename qw(dirname);
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use InvictiTest;

my $exporter = '/usr/bin/prometheus-postgres-exporter';
plan skip_all => "postgres_exporter is not installed ($exporter)" unless -x $exporter;
my $root = dirname(__FILE__) . '/../..';
my $queries = "$root/monitoring/postgres_exporter.yaml";

my %target = map { $_ => target_uuid("prom-$_") } qw(done failed slow queued);
my $sim = start_simulator(
	targets => [
		{ target_id => $target{done}, outcome => 'completed' },
		{ target_id => $target{failed}, outcome => 'failed' },
		{ target_id => $target{slow}, outcome => 'completed', duration_scale => 100 },
		{ target_id => $target{queued}, outcome => 'completed' },
	]);
my $node = new_node('prom', sim => $sim, no_extension => 1);
sub sql { $node->safe_psql('postgres', $_[0]) }

# The README's install, and a monitoring role with only what it needs.
sql(q{
	CREATE SCHEMA invicti;
	CREATE EXTENSION invicti_scan SCHEMA invicti;
	CREATE ROLE exporter LOGIN IN ROLE pg_monitor, invicti_scan_read_all;
	GRANT USAGE ON SCHEMA invicti TO exporter;
});
sub launch_in
{
	my ($t) = @_;
	return sql("SELECT invicti.invicti_launch_scan('$t', '" . PROFILE_HIGH_RISK . "')");
}

# Scans finished (completed, failed, an unknown target's error), one
# running, one launch the API keeps refusing (pending, ageing).
my %id = map { $_ => launch_in($target{$_}) } qw(done failed slow);
$id{missing} = launch_in(target_uuid('prom-missing'));
wait_for($node, "SELECT count(*) = 3 FROM invicti.invicti_scans WHERE worker_state = 'done'",
	'three scans finished', 60);
wait_for($node, "SELECT status = 'processing' FROM invicti.invicti_scans WHERE id = $id{slow}",
	'one scan is running');
$sim->faults({ match => { method => 'POST', path => '/scans$' }, fault => 'status', status => 503 });
$id{queued} = launch_in($target{queued});
wait_for($node, "SELECT last_error LIKE 'launch: HTTP 503%' FROM invicti.invicti_scans WHERE id = $id{queued}",
	'a launch the API refuses stays pending');

# --- the exporter ------------------------------------------------------------------
my $port = PostgreSQL::Test::Cluster::get_free_port();
my ($out, $err) = ('', '');
local $ENV{DATA_SOURCE_NAME} = sprintf('host=%s port=%d user=exporter dbname=postgres sslmode=disable',
	$node->host, $node->port);
my $exp = IPC::Run::start(
	[ $exporter, "--extend.query-path=$queries", "--web.listen-address=127.0.0.1:$port",
	  '--disable-settings-metrics', '--log.level=warn' ],
	'>', \$out, '2>', \$err);
my $http = HTTP::Tiny->new(timeout => 10);
sub scrape
{
	my $deadline = time() + InvictiTest::scaled_timeout(30);
	while (time() < $deadline)
	{
		my $r = $http->get("http://127.0.0.1:$port/metrics");
		return $r->{content} if $r->{success};
		sleep 0.3;
	}
	die "the exporter did not answer on port $port: $err";
}
# name{labels} value -> { 'name{a="x",b="y"}' => value }, labels sorted,
# without the label the exporter adds to every series of a query (server)
sub parse_metrics
{
	my ($text) = @_;
	my %m;
	for (split /\n/, $text)
	{
		next if /^#/ || !/\S/;
		my ($name, $labels, $value) = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/ or next;
		my @l = sort grep { !/^server=/ } split /,(?=\w+=")/, $labels // '';
		$m{ $name . (@l ? '{' . join(',', @l) . '}' : '') } = $value;
	}
	return \%m;
}

my $stats_sql = 'SELECT row_to_json(s) FROM invicti.invicti_scan_stats s';
my $before = decode_json(sql($stats_sql));
my $t0 = time();
my $m = parse_metrics(scrape());
my $t1 = time();
my $after = decode_json(sql($stats_sql));

my @load = grep { /^pg_exporter_user_queries_load_error/ } keys %$m;
ok(@load && !grep({ $m->{$_} != 0 } @load), 'the queries file loaded without error');
is($m->{pg_exporter_last_scrape_error}, 0, 'every query ran without error (as the monitoring role)');

# the worker
is($m->{invicti_scan_worker_running}, 1, 'the worker is running');
is($m->{invicti_scan_worker_paused_until_timestamp_seconds}, 0, 'and not paused');
cmp_ok($m->{invicti_scan_worker_requests}, '>=', $before->{requests}, 'requests: at least as many as before the scrape');
cmp_ok($m->{invicti_scan_worker_requests}, '<=', $after->{requests}, 'and at most as many as after');
cmp_ok(abs($m->{invicti_scan_worker_last_success_timestamp_seconds} - $t1), '<', 60,
	'the last success is a Unix time of the last minute');
cmp_ok($m->{invicti_scan_worker_started_timestamp_seconds}, '>', $t0 - 600, 'the start time is a Unix time');

# requests by kind and outcome: one series per counter of the stats view
my %series;
for my $kind (keys %{ $after->{requests_by_kind} })
{
	for my $outcome (keys %{ $after->{requests_by_kind}{$kind} })
	{
		my $key = "invicti_scan_requests_total{kind=\"$kind\",outcome=\"$outcome\"}";
		$series{$key} = 1;
		my $lo = $before->{requests_by_kind}{$kind}{$outcome} // 0;
		my $hi = $after->{requests_by_kind}{$kind}{$outcome};
		my $v = $m->{$key} // $lo;
		ok(defined $m->{$key} || $lo == 0, "$key is exported") or next;
		ok($v >= $lo && $v <= $hi, "$key = $v, between $lo and $hi");
	}
}
is_deeply([ sort grep { /^invicti_scan_requests_total/ && !$series{$_} } keys %$m ], [],
	'no request series the stats view does not have');
ok(defined $m->{'invicti_scan_requests_total{kind="launch",outcome="server_error"}'},
	'the refused launches are counted as server errors');

# scans
is($m->{'invicti_scan_scans_in_progress{status="processing",worker_state="poll"}'}, 1, 'one scan in progress, polled');
my $pending = 0;
$pending += $m->{$_} for grep { /^invicti_scan_scans_in_progress\{status="pending"/ } keys %$m;
is($pending, 1, 'one launch in progress, pending');
is(scalar(grep { /^invicti_scan_scans_in_progress.*worker_state="done"/ } keys %$m), 0,
	'finished scans are not "in progress"');
is($m->{invicti_scan_launches_pending}, 1, 'one launch not acknowledged');
my $age = sql("SELECT extract(epoch FROM now() - created_at) FROM invicti.invicti_scans WHERE id = $id{queued}");
ok($m->{invicti_scan_launches_oldest_pending_age_seconds} > 0
	  && $m->{invicti_scan_launches_oldest_pending_age_seconds} <= $age,
	"its age is given ($m->{invicti_scan_launches_oldest_pending_age_seconds} s, <= $age s)");
is($m->{"invicti_scan_recent_done{status=\"$_\"}"}, 1, "one recent $_ scan")
  for qw(completed failed error);

# --- the alert rules ------------------------------------------------------------------
# the series named in the rules' expressions (not in their texts)
my $rules = join "\n", grep { !/^\s*(summary|description):/ } split /\n/,
  slurp_file("$root/monitoring/alerts.yaml");
my %exported = map { /^(\w+)/ ? ($1 => 1) : () } keys %$m;
my @used = do { my %u = map { $_ => 1 } $rules =~ /\b(invicti_scan_\w+)/g; sort keys %u };
ok(scalar(@used) >= 4, 'the alert rules use ' . scalar(@used) . ' series');
for my $s (@used)
{
	ok($exported{$s}, "alerts.yaml's $s is a series the exporter produces");
}
SKIP:
{
	my ($promtool) = grep { -x "$_/promtool" } split /:/, $ENV{PATH};
	skip 'promtool is not installed (Debian: prometheus)', 2 unless $promtool;
	my ($rc, $o, $e) = (0, '', '');
	IPC::Run::run([ "$promtool/promtool", 'check', 'rules', "$root/monitoring/alerts.yaml" ], '>', \$o, '2>', \$e);
	like($o . $e, qr/SUCCESS: 4 rules found/, 'promtool check rules: the rules are valid');
	($o, $e) = ('', '');
	IPC::Run::run([ 'sh', '-c', "cd '$root/monitoring' && '$promtool/promtool' test rules alerts_test.yaml" ],
		'>', \$o, '2>', \$e);
	like($o . $e, qr/SUCCESS/, 'promtool test rules: each alert fires when it should, and only then')
	  or diag($o . $e);
}

$exp->kill_kill;
$sim->faults();
done_testing();
