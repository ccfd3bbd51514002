# soak.pl: memory soak of the invicti_scan worker (run by test/soak.sh).
#
# Parks SOAK_SCANS scans (default 1000) in a status that never changes,
# polls them every second with a few per cent of broken answers mixed in,
# launches a few short scans every few seconds (some launches fail or get
# no answer, so retries, reconciliation and the findings import run too),
# and samples the worker's memory from /proc/<pid>/status after 1,000 and
# after SOAK_REQUESTS (default 100,000) API requests, both counted from the
# end of the warm-up (the simulator's GET /_sim/stats total).  Passes when
# the worker's private memory (RssAnon) grew by less than SOAK_LIMIT_KB
# (default 2048) between the two samples.  At each sample it also dumps the
# worker's memory contexts (pg_log_backend_memory_contexts) and prints the
# ones that changed, so growth can be traced to a context or ruled out of
# palloc'd memory altogether.
#
# It is a benchmark, not a test of `make test`: it takes minutes and its
# figures depend on the machine.  It must never talk to anything but the
# simulator on loopback, never change anything outside its own temporary
# directories, and never report a pass it did not measure (a restarted
# worker or a stalled run is a failure, not a skipped sample).
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use JSON::PP;
use InvictiTest;

my $n_scans = $ENV{SOAK_SCANS} || 1000;
my $early = $ENV{SOAK_EARLY} || 1000;
my $requests = $ENV{SOAK_REQUESTS} || 100_000;
my $limit_kb = $ENV{SOAK_LIMIT_KB} || 2048;
my $concurrency = $ENV{SOAK_CONCURRENCY} || 64;
# Short scans launched every $churn_every seconds during the soak.
my $churn = $ENV{SOAK_CHURN} // 10;
my $churn_every = 5;
# Seconds without a single API request after which the run has stalled.
my $stall_window = 60;

my @targets = map { target_uuid("soak-$_") } 1 .. $n_scans;
my @short = map { target_uuid("soak-short-$_") } 1 .. 50;
my $sim = start_simulator(
	targets => [
		(map { { target_id => $_, outcome => 'stuck_unknown' } } @targets),
		(map { { target_id => $_, outcome => 'completed' } } @short),
	]);
my $node = new_node('soak', sim => $sim,
	settings => {
		'invicti_scan.max_concurrent_requests' => $concurrency,
		# a timed-out poll holds a slot this long; keep the fault cheap
		'invicti_scan.request_timeout' => "'2s'",
		# the soak's own statements would swamp the log it parses
		log_statement => "'none'",
	});

my $pid = worker_pid($node);
ok($pid =~ /^\d+$/, "worker running (pid $pid)");

# ---- warm-up: launch and park every scan --------------------------------
my $t0 = time();
launch_many($node, @targets);
wait_for($node,
	"SELECT count(*) = $n_scans FROM invicti_scans WHERE status = 'under_review'",
	"$n_scans scans launched and parked", 600);
diag(sprintf('warm-up: %d scans launched and parked in %.1f s',
		$n_scans, time() - $t0));

# ---- the error mix ---------------------------------------------------------
# A few per cent of answers are broken so that error paths are soaked too.
# Each rule is rolled in turn, so the shares below are close to what each
# one gets.  No 404 (it stops polling a scan, shrinking the load) and no
# 401/429 (they pause every request, which measures the pause, not memory).
my $poll = { method => 'GET', path => '^/api/v1/scans/[0-9a-f-]{36}$' };
my @mix = (
	[ 0.020, { fault => 'status', status => 500 } ],
	[ 0.005, { fault => 'status', status => 503 } ],
	[ 0.010, { fault => 'garbage', status => 200, bytes => 300 } ],
	[ 0.005, { fault => 'html', status => 502 } ],
	[ 0.005, { fault => 'truncate' } ],
	[ 0.005, { fault => 'empty' } ],
	[ 0.005, { fault => 'drop', when => 'after' } ],
	[ 0.002, { fault => 'latency', ms => 3000 } ],    # > request_timeout
);
# Launches: a refused one is retried, one without an answer is reconciled
# (the worker lists the target's scans before launching again).
my $post = { method => 'POST', path => '^/api/v1/scans$' };
my @launch_mix = (
	[ 0.05, { fault => 'status', status => 500, process => JSON::PP::true } ],
	[ 0.03, { fault => 'drop', when => 'after' } ],
	[ 0.02, { fault => 'status', status => 503 } ],
);
$sim->faults(
	(map { { match => $poll, probability => $_->[0], %{ $_->[1] } } } @mix),
	(map { { match => $post, probability => $_->[0], %{ $_->[1] } } } @launch_mix));
my ($churned, $last_churn) = (0, 0);

# A few short scans, every $churn_every seconds.
sub churn
{
	return if !$churn || time() - $last_churn < $churn_every;
	$last_churn = time();
	launch_many($node, map { $short[ ($churned + $_) % @short ] } 1 .. $churn);
	$churned += $churn;
}

# ---- sampling ----------------------------------------------------------
sub memory_of
{
	my ($p) = @_;
	open(my $fh, '<', "/proc/$p/status") or return undef;
	my %m;
	while (<$fh>)
	{
		$m{$1} = $2 if /^(VmRSS|RssAnon|RssFile|RssShmem|VmHWM|VmData):\s+(\d+) kB/;
	}
	return \%m;
}

sub total_requests { return $sim->control('GET', '/_sim/stats')->{total} }

# Dump the worker's memory contexts into the server log and read them back:
# { name => [total bytes, count] }, plus the grand total under ''.
sub memory_contexts
{
	my $offset = -s $node->logfile;
	$node->safe_psql('postgres', "SELECT pg_log_backend_memory_contexts($pid)");
	my $deadline = time() + 30;
	my $log = '';
	while (time() < $deadline)
	{
		$log = slurp_file($node->logfile, $offset);
		last if $log =~ /\[$pid\][^\n]*Grand total:/;
		sleep 0.2;
	}
	my %cxt;
	for my $line (split /\n/, $log)
	{
		next unless $line =~ /\[$pid\]/;
		if ($line =~ /level: \d+; (.+?): (\d+) total in \d+ blocks/)
		{
			$cxt{$1}[0] += $2;
			$cxt{$1}[1]++;
		}
		elsif ($line =~ /(\d+) more child contexts containing (\d+) total/)
		{
			$cxt{'(summarized children)'}[0] += $2;
			$cxt{'(summarized children)'}[1] += $1;
		}
		elsif ($line =~ /Grand total: (\d+) bytes/)
		{
			$cxt{''} = [ $1, 1 ];
		}
	}
	return \%cxt;
}

my $base = total_requests();
my @samples;

# Wait until $want soak requests have been made; sample memory then.
# Notes progress every 10,000 requests after the first sample.
sub sample_at
{
	my ($want, $label) = @_;
	my ($last_n, $last_t) = (-1, time());
	my $next_note = 10_000;
	while (1)
	{
		BAIL_OUT("worker $pid is gone: it crashed or was restarted")
		  unless -e "/proc/$pid";
		my $n = total_requests() - $base;
		if ($n >= $want)
		{
			my $s = { label => $label, requests => $n, time => time(),
				mem => memory_of($pid) };
			BAIL_OUT("worker $pid is gone: it crashed or was restarted")
			  unless $s->{mem};
			$s->{cxt} = memory_contexts();
			push @samples, $s;
			return $s;
		}
		if (@samples && $n >= $next_note)
		{
			my $m = memory_of($pid) // {};
			diag(sprintf('%7d requests, %5.0f req/s, RssAnon %d kB, VmRSS %d kB',
					$n, ($n - $samples[0]{requests}) / (time() - $samples[0]{time}),
					$m->{RssAnon} // 0, $m->{VmRSS} // 0));
			$next_note += 10_000 while $next_note <= $n;
		}
		churn();
		if ($n != $last_n)
		{
			($last_n, $last_t) = ($n, time());
		}
		elsif (time() - $last_t > $stall_window)
		{
			BAIL_OUT("no API request for $stall_window s at $n of $want requests");
		}
		sleep($want - $n > 5000 ? 1 : 0.05);
	}
}

my $s1 = sample_at($early, 'early');
my $s2 = sample_at($requests, 'late');

is(worker_pid($node), $pid, 'the same worker served every request');
my $short_in = join ',', map { "'$_'" } @short;
my $short_rows = $node->safe_psql('postgres',
	"SELECT string_agg(status || ': ' || n, ', ' ORDER BY status) FROM
	   (SELECT status, count(*) AS n FROM invicti_scans
	    WHERE target_id IN ($short_in) GROUP BY status) s");

# ---- report ------------------------------------------------------------
my $elapsed = $s2->{time} - $s1->{time};
my $counts = $sim->control('GET', '/_sim/stats')->{counts};
my ($ok, $bad) = (0, 0);
for my $k (keys %$counts)
{
	next unless $k =~ m{^GET /api/v1/scans/\{scan_id\} (\d+)$};
	if ($1 == 200) { $ok += $counts->{$k} } else { $bad += $counts->{$k} }
}
my $faults = 0;
$faults += $_->{applied} for @{ $sim->control('GET', '/_sim/faults')->{rules} };

my @fig = (
	[ 'scans parked', $n_scans ],
	[ 'requests (simulator total)', total_requests() ],
	[ 'requests sampled at', "$s1->{requests} and $s2->{requests} (after warm-up)" ],
	[ 'elapsed between samples', sprintf('%.1f s', $elapsed) ],
	[ 'request rate', sprintf('%.0f req/s', ($s2->{requests} - $s1->{requests}) / $elapsed) ],
	[ 'polls answered 200 / other', "$ok / $bad" ],
	[ 'short scans launched', "$churned ($short_rows)" ],
	[ 'faults injected', sprintf('%d (%.1f%% of %d polls)', $faults,
			100 * $faults / (($ok + $bad) || 1), $ok + $bad) ],
);
for my $k (qw(RssAnon VmRSS RssShmem RssFile VmData VmHWM))
{
	push @fig, [ $k,
		sprintf('%8d kB -> %8d kB  (%+d kB)', $s1->{mem}{$k}, $s2->{mem}{$k},
			$s2->{mem}{$k} - $s1->{mem}{$k}) ];
}
my ($g1, $g2) = ($s1->{cxt}{''}[0] // 0, $s2->{cxt}{''}[0] // 0);
push @fig, [ 'memory contexts (grand total)',
	sprintf('%8d kB -> %8d kB  (%+d kB)', $g1 / 1024, $g2 / 1024, ($g2 - $g1) / 1024) ];
diag('');
diag('invicti_scan worker soak');
diag(sprintf('  %-31s %s', "$_->[0]:", $_->[1])) for @fig;

# Contexts whose size changed between the samples, biggest change first.
my %names = map { $_ => 1 } grep { $_ ne '' } keys %{ $s1->{cxt} }, keys %{ $s2->{cxt} };
my @changed = sort { abs($b->[1]) <=> abs($a->[1]) }
  grep { $_->[1] != 0 }
  map {
	[ $_, ($s2->{cxt}{$_}[0] // 0) - ($s1->{cxt}{$_}[0] // 0),
	  $s1->{cxt}{$_}[1] // 0, $s2->{cxt}{$_}[1] // 0 ]
  } keys %names;
if (@changed)
{
	diag('  memory contexts that changed (name: change, count before -> after):');
	diag(sprintf('    %-40s %+8d kB  %d -> %d', $_->[0], $_->[1] / 1024, $_->[2], $_->[3]))
	  for @changed[ 0 .. ($#changed < 9 ? $#changed : 9) ];
}

# VmRSS also counts the shared buffers and other shared memory the worker
# happens to touch (RssShmem): reading more of the table or the catalogs
# makes it "grow" without the worker holding one more byte of its own.
# RssAnon is the worker's private memory (malloc, palloc blocks, libcurl),
# which is where a leak would show, so the limit applies to it.
my $growth = $s2->{mem}{RssAnon} - $s1->{mem}{RssAnon};
cmp_ok($growth, '<', $limit_kb,
	"RssAnon grew by $growth kB between $s1->{requests} and $s2->{requests} requests (limit $limit_kb kB)");

done_testing();
