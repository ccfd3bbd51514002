# Many running scans polled over and over must not bloat the table: a poll
# that changes nothing writes nothing, and one that does change something
# is a HOT update (no index touched).  Figures come from pg_stat_user_tables.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use InvictiTest;

my $n = 200;
my @targets = map { target_uuid("quiet-$_") } 1 .. $n;
my $sim = start_simulator(
	targets => [ map { { target_id => $_, outcome => 'stuck_unknown' } } @targets ]);
my $node = new_node('quiet', sim => $sim,
	settings => {
		'invicti_scan.max_concurrent_requests' => 32,
		autovacuum => 'off',    # keep the counters ours alone
	});

launch_many($node, @targets);
wait_for($node,
	"SELECT count(*) = $n FROM invicti_scans WHERE status = 'under_review'",
	"$n scans parked in a status that never changes", 120);

sub table_stats
{
	$node->safe_psql('postgres', 'SELECT pg_stat_clear_snapshot()');
	my ($upd, $hot, $dead, $size, $idx) = split /\|/, $node->safe_psql('postgres',
		"SELECT n_tup_upd, n_tup_hot_upd, n_dead_tup,
		        pg_relation_size('invicti_scans'), pg_indexes_size('invicti_scans')
		 FROM pg_stat_user_tables WHERE relname = 'invicti_scans'");
	my $polls = grep { $_->{method} eq 'GET' && $_->{path} =~ m{^/api/v1/scans/} }
	  $sim->log_entries;
	return { upd => $upd, hot => $hot, dead => $dead, size => $size,
		idx => $idx, polls => $polls };
}

# Steady state: every scan is polled every second and nothing changes.
sleep 3;    # let the last status changes settle and their stats flush
my $before = table_stats();
sleep 8;
my $after = table_stats();
my $polls = $after->{polls} - $before->{polls};
cmp_ok($polls, '>=', 4 * $n, "$polls polls of unchanged scans in 8 s");
is($after->{upd} - $before->{upd}, 0, 'unchanged polls wrote no row');
is($after->{size}, $before->{size}, 'the table did not grow');
is($after->{idx}, $before->{idx}, 'its indexes did not grow');
diag(sprintf('%d unchanged polls: %d row updates, table %d kB, indexes %d kB',
		$polls, $after->{upd} - $before->{upd}, $after->{size} / 1024,
		$after->{idx} / 1024));

# Now every poll reports new progress: each one updates its row, HOT.
my $sims = $sim->scans;
for my $round (1 .. 3)
{
	$sim->control('POST', "/_sim/scans/$_/force",
		{ status => 'processing', progress => 10 * $round })
	  for keys %$sims;
	wait_for($node,
		"SELECT count(*) = $n FROM invicti_scans WHERE progress = " . 10 * $round,
		"round $round: every scan's new progress recorded");
}
sleep 2;
my $changed = table_stats();
my $updates = $changed->{upd} - $after->{upd};
cmp_ok($updates, '>=', 3 * $n, "$updates updates for 3 rounds of changes");
# HOT needs room on the page; a snapshot held elsewhere can keep a page
# from being pruned in time, so allow the odd exception.
my $hot = $changed->{hot} - $after->{hot};
cmp_ok($hot / $updates, '>=', 0.95, 'they are HOT updates (no index entry written)');
# Only a non-HOT update writes index entries, and its entries can split at
# most one page of each index.
my $indexes = $node->safe_psql('postgres',
	"SELECT count(*) FROM pg_index WHERE indrelid = 'invicti_scans'::regclass");
cmp_ok($changed->{idx} - $before->{idx}, '<=', ($updates - $hot) * $indexes * 8192,
	'indexes grew only by what the odd non-HOT update wrote');
diag(sprintf('%d changing polls: %d HOT of %d updates, table %d kB -> %d kB',
		3 * $n, $changed->{hot} - $after->{hot}, $updates,
		$after->{size} / 1024, $changed->{size} / 1024));

done_testing();
