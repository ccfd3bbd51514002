# InvictiTest.pm: shared helpers for invicti_scan's TAP tests.
#
# Starts the Invicti API simulator (test/simulator/invicti_sim.py) and
# PostgreSQL nodes with the extension preloaded and pointed at it, and
# offers the waits and lookups the tests share.  It must never talk to
# anything but loopback, and must not hide failures: every helper dies or
# fails a test when something is not as expected.
package InvictiTest;

use strict;
use warnings;

use Exporter 'import';
use File::Basename qw(basename dirname);
use File::Spec;
use HTTP::Tiny;
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(
  start_simulator new_node launch launch_many wait_for scan_rows
  scan_row target_uuid PROFILE_HIGH_RISK TOKEN log_contains count_in_log
  worker_pid wait_until refresh_times kill_worker wait_worker_back
);

use constant PROFILE_HIGH_RISK => '11111111-1111-1111-1111-111111111112';
use constant TOKEN => 'test-token-5f0c1d2e3a4b';

my $ROOT = File::Spec->rel2abs(dirname(__FILE__) . '/../..');
my $JSON = JSON::PP->new->canonical;

# A stable, readable target id for a test: "t-<name>" hashed into a uuid.
sub target_uuid
{
	my ($name) = @_;
	require Digest::MD5;
	my $h = Digest::MD5::md5_hex($name);
	return join '-', substr($h, 0, 8), substr($h, 8, 4), '4' . substr($h, 13, 3),
	  '8' . substr($h, 17, 3), substr($h, 20, 12);
}

# Start the simulator.  Options: token, time_scale, shape, scan_id_in,
# pagination, variants (hashref of the simulator's documented variants:
# test/simulator/sim/config.py), seed, tls_cert, tls_key, targets (list of
# {target_id, outcome}).  Without options it answers as the vendor's spec says.
sub start_simulator
{
	my (%opt) = @_;
	my $dir = PostgreSQL::Test::Utils::tempdir('sim');
	my $portfile = "$dir/ports.json";
	my @cmd = (
		'/usr/bin/python3', "$ROOT/test/simulator/invicti_sim.py",
		'--port', '0', '--control-port', '0',
		'--port-file', $portfile,
		'--token', $opt{token} // TOKEN,
		'--time-scale', ($opt{time_scale} // 0.05) * slowdown(),
		'--seed', $opt{seed} // 1,
		'--log-file', "$dir/requests.jsonl");
	# the contract test (test/contract/check_contract.py) reads every exchange
	push @cmd, '--contract-log', "$ENV{INVICTI_CONTRACT_DIR}/" . basename($dir) . "-$$.jsonl"
	  if $ENV{INVICTI_CONTRACT_DIR};
	push @cmd, '--shape', $opt{shape} if $opt{shape};
	push @cmd, '--scan-id-in', $opt{scan_id_in} if $opt{scan_id_in};
	push @cmd, '--pagination', $opt{pagination} if $opt{pagination};
	push @cmd, map { ('--variant', "$_=$opt{variants}{$_}") } sort keys %{ $opt{variants} // {} };
	push @cmd, '--forbidden-token', $opt{forbidden_token} if $opt{forbidden_token};
	push @cmd, '--tls-cert', $opt{tls_cert}, '--tls-key', $opt{tls_key}
	  if $opt{tls_cert};

	my $pid = fork() // die "fork: $!";
	if ($pid == 0)
	{
		open(STDOUT, '>', "$dir/stdout.log") or die;
		open(STDERR, '>', "$dir/stderr.log") or die;
		exec(@cmd) or die "exec: $!";
	}
	my $deadline = time() + 30;
	while (!-s $portfile)
	{
		die "simulator did not start:\n" . slurp_file("$dir/stderr.log")
		  if time() > $deadline || waitpid($pid, WNOHANG) == $pid;
		sleep 0.05;
	}
	my $ports = decode_json(slurp_file($portfile));
	my $sim = bless {
		pid => $pid,
		dir => $dir,
		scheme => $opt{tls_cert} ? 'https' : 'http',
		api_port => $ports->{api_port},
		control_port => $ports->{control_port},
		http => HTTP::Tiny->new(timeout => 30),
	}, 'InvictiSim';
	$sim->targets(@{ $opt{targets} }) if $opt{targets};
	return $sim;
}

# A started node with the extension preloaded, created, and pointed at
# the simulator.  Options: sim, settings (hashref of invicti_scan.* or any
# other setting), allows_streaming, has_streaming, no_extension.
sub new_node
{
	my ($name, %opt) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => $opt{allows_streaming} // 0);
	my %settings = (
		shared_preload_libraries => "'invicti_scan'",
		'invicti_scan.poll_interval' => "'1s'",
		'invicti_scan.request_timeout' => "'3s'",
		'invicti_scan.retry_max_delay' => "'2s'",
		'invicti_scan.api_token' => "'" . TOKEN . "'",
		# the tests check behaviour, not the budget (its default of 120 a
		# minute would make them wait): no limit unless a test sets one
		'invicti_scan.max_requests_per_minute' => 0,
		# nor the catalogs (their sync would add requests the tests count):
		# only when invicti_sync() asks, unless a test sets an interval
		'invicti_scan.sync_interval' => 0,
	);
	$settings{'invicti_scan.base_url'} = "'" . $opt{sim}->api_url . "'"
	  if $opt{sim};
	%settings = (%settings, %{ $opt{settings} // {} });
	$node->append_conf('postgresql.conf',
		join('', map { "$_ = $settings{$_}\n" } sort keys %settings));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION invicti_scan')
	  unless $opt{no_extension};
	return $node;
}

# Queue one scan; returns its row id.
sub launch
{
	my ($node, $target, $profile) = @_;
	return $node->safe_psql('postgres',
		    "SELECT invicti_launch_scan('$target', '"
		  . ($profile // PROFILE_HIGH_RISK)
		  . "')");
}

# Queue one scan per target in a single transaction; returns the row ids.
sub launch_many
{
	my ($node, @targets) = @_;
	my $values = join ',', map { "('$targets[$_]'::uuid, $_)" } 0 .. $#targets;
	my $ids = $node->safe_psql('postgres',
		"SELECT invicti_launch_scan(t, '" . PROFILE_HIGH_RISK . "')
		 FROM (VALUES $values) v(t, n) ORDER BY n");
	return split /\n/, $ids;
}

# INVICTI_TEST_SLOWDOWN (default 1): how many times slower than usual the
# servers run (test/valgrind.sh runs them under valgrind).  Waits get that
# much longer and the simulator's scans run that much slower, so a test's
# timing relative to the worker holds; what is checked never changes.
sub slowdown { return $ENV{INVICTI_TEST_SLOWDOWN} || 1 }

# A wait's time limit in seconds: $timeout (default 60), times slowdown.
sub scaled_timeout
{
	my ($timeout) = @_;
	return ($timeout // 60) * slowdown();
}

# Wait until a query returns 't' (default 60 s); fail the test if not.
sub wait_for
{
	my ($node, $query, $what, $timeout) = @_;
	my $start = time();
	my $deadline = $start + scaled_timeout($timeout);
	my $last = '';
	while (time() < $deadline)
	{
		$last = $node->safe_psql('postgres', $query);
		if ($last eq 't')
		{
			pass(sprintf('%s (%.1f s)', $what, time() - $start));
			return 1;
		}
		sleep 0.2;
	}
	fail("$what (timed out; last answer: '$last')");
	diag(scan_rows($node, 'true'));
	return 0;
}

# Wait until $check->() returns true (default 60 s), for conditions that
# are not a query on one node (the simulator's log, a server log); passes
# or fails a test named $what.  Returns the check's last result.
sub wait_until
{
	my ($check, $what, $timeout) = @_;
	my $start = time();
	my $deadline = $start + scaled_timeout($timeout);
	while (1)
	{
		my $r = $check->();
		if ($r)
		{
			pass(sprintf('%s (%.1f s)', $what, time() - $start));
			return $r;
		}
		if (time() >= $deadline)
		{
			fail("$what (timed out)");
			return $r;
		}
		sleep 0.2;
	}
}

# Rows as text, for diagnostics and comparisons.
sub scan_rows
{
	my ($node, $where) = @_;
	return $node->safe_psql('postgres',
		"SELECT id, status, worker_state, scan_id, progress, last_error
		 FROM invicti_scans WHERE $where ORDER BY id");
}

# One row as a hashref of column => text.
sub scan_row
{
	my ($node, $id) = @_;
	my $json = $node->safe_psql('postgres',
		"SELECT row_to_json(s) FROM invicti_scans s WHERE id = $id");
	return $json eq '' ? undef : decode_json($json);
}

sub log_contains
{
	my ($node, $pattern, $offset) = @_;
	my $log = slurp_file($node->logfile, $offset // 0);
	return $log =~ $pattern;
}

sub count_in_log
{
	my ($node, $pattern, $offset) = @_;
	my $log = slurp_file($node->logfile, $offset // 0);
	my $n = () = $log =~ /$pattern/g;
	return $n;
}

# When each scan was refreshed, from simulator log entries, within
# [from, to]: a GET of the scan, or a list page that carried it (whichever
# way the worker polls).  { scan_id => [ times ] }.
sub refresh_times
{
	my ($from, $to, @entries) = @_;
	my %t;
	for (@entries)
	{
		next unless $_->{method} eq 'GET' && $_->{time} >= $from && $_->{time} <= $to;
		if ($_->{path} =~ m{^/api/v1/scans/([0-9a-f-]{36})$})
		{
			push @{ $t{$1} }, $_->{time};
		}
		elsif ($_->{path} eq '/api/v1/scans' && $_->{listed})
		{
			my $time = $_->{time};
			push @{ $t{$_} }, $time for @{ $_->{listed} };
		}
	}
	return \%t;
}

sub worker_pid
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'invicti_scan worker'");
}

# Wait until a worker other than $pid runs.  After a SIGKILL the postmaster
# restarts every backend, so a session may be cut mid-query (PostgreSQL 18's
# poll_query_until then dies of a broken pipe): each try is a new session
# and a failed try is only a reason to try again.
sub wait_worker_back
{
	my ($node, $pid) = @_;
	my $deadline = time() + scaled_timeout(180);
	while (time() < $deadline)
	{
		my $back = eval {
			$node->safe_psql('postgres',
				"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'invicti_scan worker' AND pid <> $pid"
			);
		};
		return 1 if defined $back && $back eq 't';
		sleep 0.2;
	}
	die "no worker came back after worker $pid was killed";
}

# SIGKILL the worker (the node needs restart_after_crash = on) and wait for
# the postmaster's restart to bring a new one; one test result.
sub kill_worker
{
	my ($node) = @_;
	my $pid = worker_pid($node);
	is(kill('KILL', $pid), 1, "worker $pid killed with SIGKILL");
	wait_worker_back($node, $pid);
}

package InvictiSim;

use strict;
use warnings;
use JSON::PP;
use Test::More;

sub api_url
{
	my ($self) = @_;
	return "$self->{scheme}://127.0.0.1:$self->{api_port}";
}

# Call the control API; returns the decoded JSON answer.
sub control
{
	my ($self, $method, $path, $body) = @_;
	my $res = $self->{http}->request(
		$method,
		"http://127.0.0.1:$self->{control_port}$path",
		{
			headers => { 'content-type' => 'application/json' },
			defined $body ? (content => encode_json($body)) : (),
		});
	die "simulator control $method $path: $res->{status} $res->{content}"
	  unless $res->{success};
	return $res->{content} eq '' ? {} : decode_json($res->{content});
}

# Targets: list of hashrefs {target_id, outcome, ...}.
sub targets
{
	my ($self, @targets) = @_;
	return $self->control('PUT', '/_sim/targets', { targets => \@targets });
}

# Remove a target as DELETE /api/v1/targets/<id> would (its scans and
# reports go too), behind the client's back: no API request, nothing logged.
sub delete_target
{
	my ($self, $target_id) = @_;
	return $self->control('DELETE', "/_sim/targets/$target_id");
}

# Replace the scanning profile store: list of hashrefs {profile_id, name,
# custom, sort_order, checks}; none empties it (reset restores the built-in).
sub profiles
{
	my ($self, @profiles) = @_;
	return $self->control('PUT', '/_sim/profiles', { profiles => \@profiles });
}

# Replace the report templates: list of hashrefs {template_id, name, group}.
sub report_templates
{
	my ($self, @templates) = @_;
	return $self->control('PUT', '/_sim/report_templates',
		{ templates => \@templates });
}

# Every report the simulator ever created, with its status, keyed by report_id.
sub sim_reports
{
	my ($self) = @_;
	my $res = $self->control('GET', '/_sim/reports');
	return { map { $_->{report_id} => $_ } @{ $res->{reports} } };
}

# Pin a report's status (undef unpins); returns the report as /_sim/reports has it.
sub force_report
{
	my ($self, $report_id, $status) = @_;
	return $self->control('POST', "/_sim/reports/$report_id/force",
		{ status => $status });
}

# Replace the fault rules (none = clear).
sub faults
{
	my ($self, @rules) = @_;
	return $self->control('DELETE', '/_sim/faults') unless @rules;
	return $self->control('POST', '/_sim/faults', { rules => \@rules });
}

sub config
{
	my ($self, %changes) = @_;
	return $self->control('POST', '/_sim/config', \%changes);
}

# Every request-log entry (optionally since a sequence number).
sub log_entries
{
	my ($self, $since) = @_;
	my @all;
	my $seq = $since // 0;
	while (1)
	{
		my $page = $self->control('GET', "/_sim/log?since=$seq");
		push @all, @{ $page->{entries} };
		last unless $page->{more};
		$seq = $page->{next_seq};
	}
	return @all;
}

# The sequence number the next logged request will get.
sub next_seq
{
	my ($self) = @_;
	return $self->control('GET', '/_sim/log?since=999999999999')->{next_seq};
}

# Launch requests (POST /api/v1/scans) in the log.
sub launches
{
	my ($self) = @_;
	return grep { $_->{method} eq 'POST' && $_->{path} eq '/api/v1/scans' }
	  $self->log_entries;
}

# Every scan the simulator ever created, keyed by scan_id.
sub scans
{
	my ($self) = @_;
	my $res = $self->control('GET', '/_sim/scans');
	return { map { $_->{scan_id} => $_ } @{ $res->{scans} } };
}

sub outage
{
	my ($self, %what) = @_;
	return $self->control('POST', '/_sim/outage', \%what);
}

sub stop
{
	my ($self) = @_;
	return unless $self->{pid};
	kill 'TERM', $self->{pid};
	waitpid($self->{pid}, 0);
	delete $self->{pid};
}

sub DESTROY
{
	my ($self) = @_;
	$self->stop;
}

1;
