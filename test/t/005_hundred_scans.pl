# 100 scans with mixed outcomes: every row reaches the state the simulator
# holds for its scan, with exactly one POST per launched row.
use strict;
use warnings;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use InvictiTest;

my @outcomes = qw(completed failed aborted paused unknown stuck_unknown);
my (@targets, %outcome_of);
for my $i (0 .. 93)
{
	my $t = target_uuid("hundred-$i");
	push @targets, $t;
	$outcome_of{$t} = $outcomes[ $i % @outcomes ];
}
# six targets the server has never heard of: their launches fail for good
my @unknown_targets = map { target_uuid("hundred-missing-$_") } 1 .. 6;

my $sim = start_simulator(
	time_scale => 0.05,
	targets => [
		map { { target_id => $_, outcome => $outcome_of{$_}, duration_scale => 1 + ($_ =~ tr/a-f//) / 10 } }
		  @targets
	]);
my $node = new_node('hundred', sim => $sim);

my @ids = launch_many($node, @targets, @unknown_targets);
is(scalar(@ids), 100, '100 scans queued in one transaction');

my %final = (completed => 'completed', failed => 'failed', aborted => 'aborted',
	paused => 'paused', unknown => 'completed', stuck_unknown => 'under_review');
my $expected = join ' ', map { "WHEN '$_' THEN '$final{$outcome_of{$_}}'" } @targets;
wait_for($node,
	"SELECT bool_and(status = CASE target_id::text $expected ELSE 'error' END)
	 FROM invicti_scans",
	'every row reached its final status', 120);

wait_for($node, "SELECT count(*) = 0 FROM invicti_scans WHERE worker_state = 'import'",
	'findings of completed scans imported');

# Compare every row with the simulator's own record of its scan.
my $sims = $sim->scans;
my $rows = $node->safe_psql('postgres',
	"SELECT json_agg(s ORDER BY id) FROM invicti_scans s");
my @rows = @{ JSON::PP::decode_json($rows) };
my ($mismatch, %scan_seen) = (0);
for my $r (@rows)
{
	if ($r->{status} eq 'error')
	{
		$mismatch++ unless !defined $r->{scan_id}
		  && $r->{last_error} =~ /HTTP 404/ && $r->{worker_state} eq 'done';
		next;
	}
	my $s = $sims->{ $r->{scan_id} };
	my $parked = $r->{status} eq 'paused' || $r->{status} eq 'under_review';
	my $ok = $s
	  && !$scan_seen{ $r->{scan_id} }++
	  && $s->{target_id} eq $r->{target_id}
	  && $s->{status} eq $r->{status}
	  && $s->{progress} == $r->{progress}
	  && ($s->{scan_session_id} // '') eq ($r->{scan_session_id} // '')
	  && JSON::PP->new->canonical->encode($s->{severity_counts}) eq
		 JSON::PP->new->canonical->encode($r->{severity_counts})
	  && $r->{worker_state} eq ($parked ? 'poll' : 'done')
	  && !defined $r->{last_error};
	unless ($ok)
	{
		$mismatch++;
		diag("row $r->{id} differs from the simulator: "
			  . JSON::PP::encode_json({ row => $r, sim => $s }));
	}
}
is($mismatch, 0, 'every row matches the simulator: status, progress, session, counts');
is(scalar(keys %scan_seen), 94, '94 distinct scans adopted, one per launched row');

# Exactly one POST per row.
my %posts;
$posts{ $_->{target_id} }++ for $sim->launches;
is(scalar(grep { $posts{$_} != 1 } @targets, @unknown_targets), 0,
	'exactly one POST per row');
is(scalar(keys %$sims), 94, 'the simulator created exactly 94 scans');
is(scalar(grep { $_->{status} >= 500 || $_->{status} == 0 } $sim->log_entries), 0,
	'no failed request along the way');

done_testing();
