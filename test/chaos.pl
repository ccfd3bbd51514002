# chaos.pl: the chaos run (started by test/chaos.sh; options come as
# CHAOS_* environment variables, see there).
#
# Launches CHAOS_SCANS scans (default 1000), one target per scan, in waves
# through the simulator while everything goes wrong at once: every kind of
# fault on a share of the API requests (latency, also past the request
# timeout; 429 with and without Retry-After; 500/502/503/504, some after
# really doing the request; garbage, HTML, empty and cut-off bodies;
# connections dropped before and after processing), the worker SIGKILLed
# every few seconds (the postmaster then restarts everything), immediate-mode
# server restarts and an API outage.  Then the faults stop and it waits
# until every row is final, and checks against the simulator's own record:
# every row ends in the status its scan has on the server, no target got
# two scans (nothing was launched twice), no launch was lost, nothing
# crashed but what the test killed, and the token never reached the log.
#
# It must never talk to anything but the simulator on loopback, never kill
# any process but its own node's worker, and never pass a check it did not
# make: a run that cannot finish is a failure.
use strict;
use warnings;
use JSON::PP;
use List::Util qw(shuffle max min);
use POSIX qw(:sys_wait_h);
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);
use InvictiTest;

my $wall_start = time();

# ---- size of the run --------------------------------------------------------
my $ci = $ENV{CHAOS_CI} ? 1 : 0;
my %cfg = (
	scans => $ENV{CHAOS_SCANS} || ($ci ? 200 : 1000),
	outage => $ENV{CHAOS_OUTAGE} // ($ci ? 15 : 60),
	restarts => $ENV{CHAOS_RESTARTS} // 2,
	waves => $ENV{CHAOS_WAVES} || ($ci ? 5 : 8),
	# a worker lives this many seconds from when it is first seen, then it
	# is SIGKILLed
	kill_min => $ENV{CHAOS_KILL_MIN} || 4,
	kill_max => $ENV{CHAOS_KILL_MAX} || 8,
	# seconds per unit of the simulator's scan timeline (12 units: completed)
	time_scale => $ENV{CHAOS_TIME_SCALE} || ($ci ? 0.75 : 1.5),
	# longest wait for every row to be final once the chaos stops
	settle_timeout => $ENV{CHAOS_SETTLE_TIMEOUT} || ($ci ? 300 : 600),
	seed => $ENV{CHAOS_SEED} || 20261127,
);
# The chaos lasts long enough for the waves, the restarts and the outage,
# which starts at 35% of it and must be over by 85% of it.
$cfg{duration} = $ENV{CHAOS_DURATION}
  || max(($ci ? 65 : 180) + $cfg{outage}, ($cfg{outage} + 10) / 0.5);
srand($cfg{seed});
note(sprintf('chaos run: %d scans in %d waves over %d s, worker SIGKILLed every %d-%d s, '
		  . '%d immediate restarts, %d s API outage, time scale %.2f s/unit, seed %d',
		@cfg{qw(scans waves duration kill_min kill_max restarts outage time_scale seed)}));

# ---- targets: one per scan, every outcome -----------------------------------
# Shares of the scans; what is left over completes.  'paused' and
# 'stuck_unknown' park (still polled); 'missing' targets are unknown to the
# server, so their launches fail for good with HTTP 404 (status 'error').
my @mix = ([ missing => 0.04 ], [ paused => 0.06 ], [ stuck_unknown => 0.03 ],
	[ failed => 0.15 ], [ aborted => 0.15 ], [ unknown => 0.15 ]);
my %final_of = (completed => 'completed', failed => 'failed', aborted => 'aborted',
	paused => 'paused', unknown => 'completed', stuck_unknown => 'under_review',
	missing => 'error');
my %parked = map { $_ => 1 } qw(paused stuck_unknown);
my (@targets, %outcome_of);
{
	my @outcomes;
	for my $m (@mix)
	{
		push @outcomes, ($m->[0]) x max(2, int($cfg{scans} * $m->[1] + 0.5));
	}
	push @outcomes, ('completed') x ($cfg{scans} - @outcomes);
	@outcomes = shuffle(@outcomes);
	for my $i (0 .. $cfg{scans} - 1)
	{
		my $t = target_uuid("chaos-$cfg{seed}-$i");
		push @targets, $t;
		$outcome_of{$t} = $outcomes[$i];
	}
}
my @known = grep { $outcome_of{$_} ne 'missing' } @targets;

my $sim = start_simulator(
	time_scale => $cfg{time_scale},
	seed => $cfg{seed},
	targets => [
		map {
			{ target_id => $_, outcome => $outcome_of{$_},
				duration_scale => 1 + (hex(substr($_, 0, 2)) % 10) / 10 }
		} @known
	]);
my $node = new_node('chaos', sim => $sim,
	settings => {
		restart_after_crash => 'on',
		'invicti_scan.poll_interval' => "'2s'",
		'invicti_scan.request_timeout' => "'3s'",
		'invicti_scan.retry_max_delay' => "'2s'",
		# the waves' statements would swamp the log this test reads
		log_statement => "'none'",
	});

# ---- the database through crashes -------------------------------------------
# psql once: (exit code, stdout, stderr).  The server may be restarting.
sub psql_once
{
	my ($sql) = @_;
	my ($out, $err, $timed_out) = ('', '', 0);
	my $rc = $node->psql('postgres', $sql, stdout => \$out, stderr => \$err,
		timeout => 120, timed_out => \$timed_out,
		extra_params => [ '-X', '-v', 'ON_ERROR_STOP=1' ]);
	return ($timed_out ? -1 : $rc, $out, $timed_out ? 'psql timed out' : $err);
}

# A read-only query, retried while the server restarts (up to $timeout s).
sub query
{
	my ($sql, $timeout) = @_;
	my $deadline = time() + ($timeout // 180);
	while (1)
	{
		my ($rc, $out, $err) = psql_once($sql);
		return $out if $rc == 0;
		die "query failed for too long: $sql\n$err" if time() > $deadline;
		sleep 0.3;
	}
}

# Queue a scan for each target in one transaction.  When the server goes
# away meanwhile, whether it committed is read back from the table: the
# transaction is all or nothing, so there are none or all of its rows.
my %launched;    # target => 1 once its row is committed
sub launch_chunk
{
	my (@chunk) = @_;
	my $values = join ',', map { "('$_'::uuid)" } @chunk;
	my $in = join ',', map { "'$_'" } @chunk;
	my $deadline = time() + 180;
	for (my $try = 1;; $try++)
	{
		my ($rc, $out) = psql_once(
			"SELECT count(invicti_launch_scan(t, '" . PROFILE_HIGH_RISK . "'))
			 FROM (VALUES $values) v(t)");
		my $have = $rc == 0 && $out eq scalar(@chunk) ? $out
		  : query("SELECT count(*) FROM invicti_scans WHERE target_id IN ($in)");
		if ($have == @chunk)
		{
			$launched{$_} = 1 for @chunk;
			return $try;
		}
		die "a launch transaction committed $have of its " . scalar(@chunk) . " rows"
		  if $have != 0;
		die 'could not launch for 180 s' if time() > $deadline;
		sleep 0.3;
	}
}

# ---- all the faults at once --------------------------------------------------
# Rules are rolled in order and the first that fires applies, so each
# probability is close to the share of requests it gets.  Launches get a
# heavier mix of their own first.  A 503 or 429 means "not processed" to
# the worker (it retries without asking), so those never process the
# request on a launch; a 503 that did process it is only given to GETs.
my $POST = { method => 'POST', path => '^/api/v1/scans$' };
my $GET = { method => 'GET' };
my $ANY = {};
my $T = JSON::PP::true;
my @fault_rules = (
	# launches: every way to leave the outcome unknown, or to fail cleanly
	[ $POST, 0.04, { fault => 'status', status => 500, process => $T } ],
	[ $POST, 0.02, { fault => 'status', status => 502, process => $T } ],
	[ $POST, 0.02, { fault => 'status', status => 504, process => $T } ],
	[ $POST, 0.03, { fault => 'drop', when => 'after' } ],
	[ $POST, 0.01, { fault => 'drop', when => 'after', reset => $T } ],
	[ $POST, 0.02, { fault => 'drop', when => 'before' } ],
	[ $POST, 0.03, { fault => 'latency', ms => 3500, jitter_ms => 1000, when => 'after' } ],
	[ $POST, 0.02, { fault => 'latency', ms => 4000, when => 'before' } ],
	[ $POST, 0.02, { fault => 'garbage', status => 201 } ],
	[ $POST, 0.02, { fault => 'truncate' } ],
	[ $POST, 0.02, { fault => 'empty' } ],
	[ $POST, 0.02, { fault => 'html', status => 502 } ],
	[ $POST, 0.02, { fault => 'status', status => 503 } ],
	[ $POST, 0.02, { fault => 'status', status => 500 } ],
	# slow but answered launches: windows for the killer (see below)
	[ $POST, 0.10, { fault => 'latency', ms => 300, jitter_ms => 1500, when => 'after' } ],
	[ $POST, 0.10, { fault => 'latency', ms => 300, jitter_ms => 1500 } ],
	# every request
	[ $ANY, 0.05, { fault => 'latency', ms => 200, jitter_ms => 800 } ],
	[ $ANY, 0.01, { fault => 'latency', ms => 3500, jitter_ms => 500, when => 'after' } ],
	[ $ANY, 0.005, { fault => 'latency', ms => 4000, when => 'before' } ],
	[ $ANY, 0.001, { fault => 'status', status => 429, retry_after => 1 } ],
	[ $ANY, 0.001, { fault => 'status', status => 429 } ],
	[ $ANY, 0.0005, { fault => 'status', status => 429, retry_after => 'date', seconds => 2 } ],
	[ $ANY, 0.001, { fault => 'status', status => 503, retry_after => 1 } ],
	[ $ANY, 0.01, { fault => 'status', status => 503 } ],
	[ $GET, 0.005, { fault => 'status', status => 503, process => $T } ],
	[ $ANY, 0.01, { fault => 'status', status => 500 } ],
	[ $ANY, 0.005, { fault => 'status', status => 500, process => $T } ],
	[ $ANY, 0.005, { fault => 'status', status => 502 } ],
	[ $ANY, 0.005, { fault => 'status', status => 502, process => $T } ],
	[ $ANY, 0.005, { fault => 'status', status => 504 } ],
	[ $ANY, 0.005, { fault => 'status', status => 504, process => $T } ],
	[ $ANY, 0.01, { fault => 'garbage' } ],
	[ $ANY, 0.005, { fault => 'html' } ],
	[ $ANY, 0.005, { fault => 'empty' } ],
	[ $ANY, 0.005, { fault => 'truncate' } ],
	[ $ANY, 0.005, { fault => 'drop', when => 'before' } ],
	[ $ANY, 0.005, { fault => 'drop', when => 'after' } ],
	[ $ANY, 0.003, { fault => 'drop', when => 'after', reset => $T } ],
	# a server that echoes the token (plainly, or in JSON escapes): it must
	# end up in no row; a launch so answered has no usable id and is
	# reconciled (the hostile modes that change outcomes, such as nonsense
	# counts or endless pages, are tested in test/t/015_trust_boundaries.pl)
	[ $ANY, 0.004, { fault => 'mutate', mutation => 'echo_token' } ],
	[ $ANY, 0.004, { fault => 'mutate', mutation => 'escaped_token' } ],
);

# ---- the chaos ---------------------------------------------------------------
my $start = time();
my $L = $cfg{duration};
sub at { return sprintf('t=%5.1f s', time() - $start) }

my @waves = do {
	my @order = shuffle(@targets);
	my $per = int(@order / $cfg{waves});
	map {
		my $n = $_ == $cfg{waves} - 1 ? @order - $per * $_ : $per;
		{ at => ($cfg{waves} > 1 ? 0.9 * $L * $_ / ($cfg{waves} - 1) : 0),
		  targets => [ @order[ $per * $_ .. $per * $_ + $n - 1 ] ] }
	} 0 .. $cfg{waves} - 1;
};
my $outage_at = $cfg{outage} > 0 ? 0.35 * $L : undef;
my @restart_at = map { (0.2 + 0.6 * ($cfg{restarts} > 1 ? $_ / ($cfg{restarts} - 1) : 0)) * $L }
  0 .. $cfg{restarts} - 1;

my (@killed, %killed);
my ($worker_pid, $next_kill, $next_look) = (0, 0, 0);
my ($kills_sending, $rows_sending) = (0, 0);    # kills with launches in flight
my $restarts = 0;
my $launch_retries = 0;
my @chunks;    # launch transactions still to send, in order

$sim->faults(map { { match => $_->[0], probability => $_->[1], %{ $_->[2] } } } @fault_rules);
note(at() . ': faults on (' . scalar(@fault_rules) . ' rules), the killer is loose');

while (time() - $start < $L || @waves || @chunks)
{
	my $t = time() - $start;
	if (@waves && $t >= $waves[0]{at})
	{
		# a wave is queued in transactions of 1 to 20 launches, one per
		# turn of this loop, so that it overlaps kills and restarts
		my $w = shift @waves;
		my @ts = @{ $w->{targets} };
		while (@ts)
		{
			push @chunks, [ splice(@ts, 0, 1 + int(rand(20))) ];
		}
		note(sprintf('%s: wave of %d launches', at(), scalar(@{ $w->{targets} })));
	}
	if (@chunks)
	{
		$launch_retries += launch_chunk(@{ shift @chunks }) - 1;
	}
	if (defined $outage_at && $t >= $outage_at)
	{
		$sim->outage(seconds => $cfg{outage});
		note(at() . ": API outage for $cfg{outage} s");
		undef $outage_at;
		next;
	}
	if (@restart_at && $t >= $restart_at[0])
	{
		shift @restart_at;
		note(at() . ': immediate-mode restart');
		$node->stop('immediate');
		$node->start;
		$restarts++;
		note(at() . ': server back');
		next;
	}
	if ($t < $L && time() >= $next_look)
	{
		# Each worker lives a few seconds from when it is first seen, then
		# is killed: only a worker the server reports as running, so that
		# every kill is one crash the postmaster logs and recovers from.
		# Kills while launches are in flight test the at-most-once rule.
		$next_look = time() + (time() >= $next_kill ? 0.1 : 0.5);
		my ($rc, $out) = psql_once(
			"SELECT pid, (SELECT count(*) FROM invicti_scans WHERE worker_state = 'sending')
			 FROM pg_stat_activity WHERE backend_type = 'invicti_scan worker'");
		my ($pid, $sending) = split /\|/, $out;
		if ($rc == 0 && ($pid // '') =~ /^\d+$/ && !$killed{$pid})
		{
			if ($pid != $worker_pid)
			{
				$worker_pid = $pid;
				$next_kill = time() + $cfg{kill_min} + rand($cfg{kill_max} - $cfg{kill_min});
			}
			# when due, rather while launches are in flight (up to 3 s later)
			elsif (time() >= $next_kill && ($sending || time() >= $next_kill + 3))
			{
				if (kill('KILL', $pid))
				{
					push @killed, $pid;
					$killed{$pid} = 1;
					$kills_sending++ if $sending;
					$rows_sending += $sending;
					note(sprintf('%s: worker %d SIGKILLed (kill %d; %d launches in flight)',
							at(), $pid, scalar(@killed), $sending));
				}
			}
		}
	}
	sleep(@chunks ? 0.05 : 0.2);
}
my $chaos_secs = time() - $start;
$sim->faults();
note(sprintf('%s: chaos over after %.0f s: faults off, %d worker kills, %d restarts',
		at(), $chaos_secs, scalar(@killed), $restarts));

ok(!$sim->control('GET', '/_sim/outage')->{down}, 'the API outage ended by itself');
ok(kill(0, $sim->{pid}) && waitpid($sim->{pid}, WNOHANG) == 0, 'the simulator is still running');

# ---- wait until every row is final -------------------------------------------
# Final: the status the target's outcome ends in, no error left to clear,
# and the worker done with it (parked scans stay polled).
sub not_final
{
	my $rows = query("SELECT target_id, status, worker_state, last_error IS NOT NULL
		FROM invicti_scans");
	my (@bad, %seen);
	for my $line (split /\n/, $rows)
	{
		my ($t, $status, $state, $has_error) = split /\|/, $line;
		$seen{$t}++;
		my $o = $outcome_of{$t} // '?';
		my $want_state = $parked{$o} ? 'poll' : 'done';
		push @bad, "$t ($o): $status/$state" . ($has_error eq 't' ? '/error' : '')
		  unless ($final_of{$o} // '') eq $status
		  && $state eq $want_state
		  && ($has_error eq 't') == ($o eq 'missing');
	}
	push @bad, map { "$_: no row" } grep { !$seen{$_} } keys %launched;
	return @bad;
}
my $settle_start = time();
my @pending;
while (1)
{
	@pending = not_final();
	last if !@pending || time() - $settle_start > $cfg{settle_timeout};
	sleep 2;
}
my $settle_secs = time() - $settle_start;
ok(!@pending, sprintf('every row reached its final state %.0f s after the chaos', $settle_secs))
  or diag(scalar(@pending) . " rows not final, e.g.:\n  " . join("\n  ", @pending[ 0 .. min(19, $#pending) ]));

# ---- compare with the simulator ---------------------------------------------
my @rows = @{ decode_json(query(
	"SELECT coalesce(json_agg(json_build_object('id', id, 'target_id', target_id,
		'status', status, 'worker_state', worker_state, 'scan_id', scan_id,
		'progress', progress, 'scan_session_id', scan_session_id,
		'severity_counts', severity_counts, 'last_error', last_error) ORDER BY id), '[]')
	 FROM invicti_scans")) };
my $sims = $sim->scans;

is(scalar(@rows), scalar(keys %launched), 'as many rows as launches committed (none lost)');
my %rows_of;
push @{ $rows_of{ $_->{target_id} } }, $_ for @rows;
is(scalar(grep { @{ $rows_of{$_} // [] } != 1 } keys %launched), 0,
	'every launched target has exactly one row');
is(scalar(grep { !$launched{ $_->{target_id} } } @rows), 0, 'no row nobody launched');
is(scalar(grep { $_->{worker_state} =~ /^(launch|sending|reconcile)$/ } @rows), 0,
	'no row stuck in launch, sending or reconcile');

my $canon = JSON::PP->new->canonical;
my (%scan_seen, @mismatch, @bad_errors);
for my $r (@rows)
{
	my $o = $outcome_of{ $r->{target_id} } // '?';
	if ($o eq 'missing' || $r->{status} eq 'error')
	{
		push @bad_errors, $r
		  unless $o eq 'missing' && $r->{status} eq 'error' && !defined $r->{scan_id}
		  && ($r->{last_error} // '') =~ /HTTP 404/ && $r->{worker_state} eq 'done';
		next;
	}
	my $s = defined $r->{scan_id} ? $sims->{ $r->{scan_id} } : undef;
	my $ok = $s
	  && !$scan_seen{ $r->{scan_id} }++
	  && $s->{target_id} eq $r->{target_id}
	  && $s->{status} eq $r->{status}
	  && $s->{status} eq $final_of{$o}
	  && ($s->{progress} // -1) == ($r->{progress} // -2)
	  && ($s->{scan_session_id} // '') eq ($r->{scan_session_id} // '')
	  && $canon->encode($s->{severity_counts} // {}) eq $canon->encode($r->{severity_counts} // {})
	  && !defined $r->{last_error};
	push @mismatch, { row => $r, sim => $s } unless $ok;
}
is(scalar(@mismatch), 0,
	'every row matches its scan on the server: status, progress, session, severity counts')
  or diag(join "\n", map { $canon->encode($_) } @mismatch[ 0 .. min(9, $#mismatch) ]);
is(scalar(@bad_errors), 0,
	'rows of targets unknown to the server, and only those, end in error with the HTTP 404 reason')
  or diag(join "\n", map { $canon->encode($_) } @bad_errors[ 0 .. min(9, $#bad_errors) ]);
if (my ($e) = grep { $_->{status} eq 'error' } @rows)
{
	note("for example: last_error = $e->{last_error}");
}

# The worker imports the findings of every session that ended (since 1.1
# completed ones, since 1.3 failed and aborted ones too): each one's
# findings are all there, once, as many of each severity as its counts.
my $findings;
if (query("SELECT to_regclass('invicti_vulnerabilities') IS NOT NULL") eq 't')
{
	my $f = decode_json(query(
		"SELECT coalesce(json_agg(json_build_object('id', s.id,
			'imported', s.findings_imported_at IS NOT NULL, 'counts', s.severity_counts,
			'found', (SELECT coalesce(json_object_agg(severity_name, n), '{}')
			          FROM (SELECT severity_name, count(*) AS n FROM invicti_vulnerabilities v
			                WHERE v.scan_row_id = s.id GROUP BY severity_name) x))), '[]')
		 FROM invicti_scans s
		 WHERE s.status IN ('completed', 'failed', 'aborted') AND s.scan_session_id IS NOT NULL"));
	my @bad = grep {
		my ($c, $got) = ($_->{counts} // {}, $_->{found});
		!$_->{imported}
		  || grep { ($c->{$_} // 0) != ($got->{$_} // 0) } keys %{ { %$c, %$got } }
	} @$f;
	is(scalar(@bad), 0,
		'the findings of every ended session were imported, as many of each severity as its counts')
	  or diag(join "\n", map { $canon->encode($_) } @bad[ 0 .. min(9, $#bad) ]);
	is(query("SELECT count(*) FROM invicti_vulnerabilities v
		JOIN invicti_scans s ON s.id = v.scan_row_id
		WHERE s.status NOT IN ('completed', 'failed', 'aborted')"), '0',
		'no findings for scans that did not end');
	is(query("SELECT count(*) FROM invicti_scans s WHERE s::text LIKE '%" . TOKEN . "%'")
		  + query("SELECT count(*) FROM invicti_vulnerabilities v WHERE v::text LIKE '%" . TOKEN . "%'"),
		0, 'the token the server echoed is in no row and no finding');
	$findings = query('SELECT count(*) FROM invicti_vulnerabilities');
}

# Per target, exactly one scan on the server: nothing was launched twice.
my %scans_of_target;
push @{ $scans_of_target{ $_->{target_id} } }, $_ for values %$sims;
my @twice = grep { @{ $scans_of_target{$_} } > 1 } keys %scans_of_target;
is(scalar(@twice), 0, 'no target got two scans on the server (nothing launched twice)')
  or diag(join "\n", map { "$_: " . join(', ', map { $_->{scan_id} } @{ $scans_of_target{$_} }) }
	  @twice[ 0 .. min(9, $#twice) ]);
is(scalar(grep { !@{ $scans_of_target{$_} // [] } } grep { $launched{$_} } @known), 0,
	'every launched known target got its scan');
is(scalar(grep { !$launched{$_} || $outcome_of{$_} eq 'missing' } keys %scans_of_target), 0,
	'no scan for a target nobody launched');

# The same from the request log: launches that created a scan, per target.
my ($requests, $faulted, $list_pages, $scan_gets, %fault_kinds, @posts) = (0, 0, 0, 0);
{
	open(my $fh, '<', "$sim->{dir}/requests.jsonl") or die "request log: $!";
	while (my $line = <$fh>)
	{
		$requests++;
		if ($line =~ /"fault": "(\w+)"/)
		{
			$faulted++;
			$fault_kinds{$1}++;
		}
		push @posts, decode_json($line)
		  if $line =~ /"method": "POST"/ && $line =~ m{"path": "/api/v1/scans"};
		$list_pages++ if $line =~ /"query": "[^"]*\bq=scan_status:/;
		$scan_gets++ if $line =~ /"method": "GET"/ && $line =~ m{"path": "/api/v1/scans/[0-9a-f-]+"};
	}
}
my %created;
$created{ $_->{target_id} }++ for grep { defined $_->{created_scan_id} } @posts;
my $dup_launches = grep { $_ > 1 } values %created;
is($dup_launches, 0, 'the request log shows no target launched twice');
# (a launch the outage cut short is logged too, with fault "outage")
my @unlogged = grep { !defined $_->{request_seq} } values %$sims;
is(scalar(@unlogged), 0, 'every scan on the server is in the request log')
  or diag(join "\n", map { $canon->encode($_) } @unlogged[ 0 .. min(9, $#unlogged) ]);
is(scalar(grep { !$created{$_} } grep { $launched{$_} } @known), 0,
	'the request log shows every launched known target launched once');
my $token = TOKEN;
ok(!log_contains($node, qr/\Q$token\E/), 'the token never appears in the server log');
ok(index(slurp_file("$sim->{dir}/requests.jsonl"), $token) < 0,
	'the token never appears in the request log');

# ---- crashes: only the ones the test caused ----------------------------------
my $log = slurp_file($node->logfile);
my (%terminated, @unexpected);
while ($log =~ /^(.*\((?:PID) (\d+)\) (?:was terminated by signal (\d+)|exited with exit code (\d+)).*)$/mg)
{
	my ($line, $pid, $sig, $code) = ($1, $2, $3, $4);
	if (defined $sig && $sig == 9 && $killed{$pid} && !$terminated{$pid}++)
	{
		next;
	}
	push @unexpected, $line;
}
push @unexpected, $1 while $log =~ /^(.*(?:PANIC|TRAP:|signal 11|signal 6\b).*)$/mg;
my $sim_err = slurp_file("$sim->{dir}/stderr.log");
push @unexpected, "simulator: $1" while $sim_err =~ /^(.*(?:Traceback|exception).*)$/mgi;
# what the worker was doing when it was killed
my %doing;
$doing{$1}++
  while $log =~ /was terminated by signal 9: Killed\n[^\n]*DETAIL:  Failed process was running: ([^\n]*)/g;
my @not_logged = grep { !$terminated{$_} } @killed;
is(scalar(@not_logged), 0,
	sprintf('each of the %d worker kills was a crash the server logged and recovered from',
		scalar(@killed)))
  or diag("killed but not logged: @not_logged");
is(scalar(@unexpected), 0, 'no crash or abnormal exit but the ones the test caused')
  or diag(join "\n", @unexpected[ 0 .. min(19, $#unexpected) ]);

# ---- the figures -------------------------------------------------------------
my %by_status;
$by_status{ $_->{status} }++ for @rows;
my $no_scan_posts = grep { !defined $_->{created_scan_id} } @posts;
my $adopted = () = $log =~ /had an unknown outcome; adopted scan/g;
my @fig = (
	[ 'scans launched', scalar(keys %launched) ],
	[ 'scans by final status', join(', ', map { "$_ $by_status{$_}" } sort keys %by_status) ],
	[ 'POSTs sent', scalar(@posts) ],
	[ 'POSTs with a fault', do {
			my %k;
			$k{ $_->{fault} . ($_->{status} ? " $_->{status}" : '') }++ for grep { $_->{fault} } @posts;
			scalar(grep { $_->{fault} } @posts) . ': ' . join(', ', map { "$_ $k{$_}" } sort keys %k)
		} ],
	[ 'POSTs that created no scan', "$no_scan_posts (of them to unknown targets: "
		  . scalar(grep { ($outcome_of{ $_->{target_id} // '' } // '') eq 'missing' } @posts) . ')' ],
	[ 'launches adopted after an unknown outcome', $adopted ],
	[ 'launches the outage cut short', scalar(grep { ($_->{fault} // '') eq 'outage' } @posts) ],
	defined $findings ? ([ 'findings imported', $findings ]) : (),
	[ 'duplicated launches', scalar(@twice) . ' (targets with two scans on the server; '
		  . "in the request log: $dup_launches)" ],
	[ 'lost', scalar(grep { !$rows_of{$_} } keys %launched)
		  + scalar(grep { $_->{worker_state} =~ /^(launch|sending|reconcile)$/ } @rows) ],
	[ 'worker kills (SIGKILL)', scalar(@killed) . ' (while ' . join(', ',
			map { "$_: $doing{$_}" } sort { $doing{$b} <=> $doing{$a} } keys %doing) . ')' ],
	[ 'kills with launches in flight', "$kills_sending ($rows_sending rows were 'sending')" ],
	[ 'immediate restarts', $restarts ],
	[ 'outage seconds', $cfg{outage} ],
	[ 'launch transactions retried', $launch_retries ],
	[ 'unexpected crashes', scalar(@unexpected) ],
	[ 'API requests', $requests ],
	[ 'status requests', "$list_pages list pages, $scan_gets of single scans (polling: "
		  . query('SELECT poll_method FROM invicti_scan_stats') . ')' ],
	[ 'requests with a fault', sprintf('%d (%.1f%%): %s', $faulted, 100 * $faulted / ($requests || 1),
			join(', ', map { "$_ $fault_kinds{$_}" } sort keys %fault_kinds)) ],
	[ 'chaos phase', sprintf('%.0f s', $chaos_secs) ],
	[ 'settling after it', sprintf('%.0f s', $settle_secs) ],
	[ 'wall time', sprintf('%.0f s', time() - $wall_start) ],
);
note('');
note('chaos run figures');
note(sprintf('  %-42s %s', "$_->[0]:", $_->[1])) for @fig;

done_testing();
