# Many running scans refreshed over and over must not bloat the table: a
# refresh that changes nothing writes nothing, and one that does change
# something writes its row once.  Scan by scan, those writes are HOT
# updates (no index touched).  Both ways of polling: scan by scan and list
# rounds.  Figures come from pg_stat_user_tables.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use InvictiTest;

my $n = 200;

for my $method (qw(scan list))
{
	my @targets = map { target_uuid("quiet-$method-$_") } 1 .. $n;
	my $sim = start_simulator(
		targets => [ map { { target_id => $_, outcome => 'running' } } @targets ]);
	my $node = new_node("quiet_$method", sim => $sim,
		settings => {
			'invicti_scan.max_concurrent_requests' => 32,
			'invicti_scan.poll_method' => $method,
			autovacuum => 'off',    # keep the counters ours alone
		});

	launch_many($node, @targets);
	wait_for($node,
		"SELECT count(*) = $n FROM invicti_scans WHERE status = 'processing' AND progress = 49",
		"$method: $n scans parked in a status that does not change", 120);

	my $table_stats = sub {
		$node->safe_psql('postgres', 'SELECT pg_stat_clear_snapshot()');
		my ($upd, $hot, $dead, $size, $idx) = split /\|/, $node->safe_psql('postgres',
			"SELECT n_tup_upd, n_tup_hot_upd, n_dead_tup,
			        pg_relation_size('invicti_scans'), pg_indexes_size('invicti_scans')
			 FROM pg_stat_user_tables WHERE relname = 'invicti_scans'");
		my @log = $sim->log_entries;
		return { upd => $upd, hot => $hot, dead => $dead, size => $size, idx => $idx,
			gets => scalar(grep { $_->{method} eq 'GET' && $_->{path} =~ m{^/api/v1/scans/[^/]+$} } @log),
			pages => scalar(grep { $_->{method} eq 'GET' && $_->{path} eq '/api/v1/scans' } @log) };
	};

	# Steady state: every scan is refreshed every second and nothing changes.
	sleep 3;    # let the last status changes settle and their stats flush
	my $before = $table_stats->();
	sleep 8;
	my $after = $table_stats->();
	my $gets = $after->{gets} - $before->{gets};
	my $pages = $after->{pages} - $before->{pages};
	if ($method eq 'scan')
	{
		cmp_ok($gets, '>=', 4 * $n, "scan: $gets requests for unchanged scans in 8 s");
		is($pages, 0, 'scan: and no list');
	}
	else
	{
		# three pages a round (99 a page), a round a second: each scan refreshed as often
		cmp_ok($pages, '>=', 8, "list: $pages list pages in 8 s ($n scans, 99 a page)");
		is($gets, 0, 'list: no request for any single scan (all are listed)');
	}
	is($after->{upd} - $before->{upd}, 0, "$method: unchanged refreshes wrote no row");
	is($after->{size}, $before->{size}, "$method: the table did not grow");
	is($after->{idx}, $before->{idx}, "$method: its indexes did not grow");
	diag(sprintf('%s: %d requests (%d GETs, %d list pages): %d row updates, table %d kB, indexes %d kB',
			$method, $gets + $pages, $gets, $pages, $after->{upd} - $before->{upd},
			$after->{size} / 1024, $after->{idx} / 1024));

	# Now every refresh reports new progress: each one updates its row once.
	my $sims = $sim->scans;
	for my $round (1 .. 3)
	{
		$sim->control('POST', "/_sim/scans/$_/force",
			{ status => 'processing', progress => 10 * $round })
		  for keys %$sims;
		wait_for($node,
			"SELECT count(*) = $n FROM invicti_scans WHERE progress = " . 10 * $round,
			"$method: change $round: every scan's new progress recorded");
	}
	sleep 2;
	my $changed = $table_stats->();
	my $updates = $changed->{upd} - $after->{upd};
	cmp_ok($updates, '>=', 3 * $n, "$method: $updates updates for 3 changes of $n scans");
	cmp_ok($updates, '<=', 3 * $n + $n, "$method: about one per change (the first also records the status)");
	my $hot = $changed->{hot} - $after->{hot};
	# HOT needs room on the page; a snapshot held elsewhere can keep a page
	# from being pruned in time, so allow the odd exception (a list page
	# writes up to 100 rows in one transaction: a little more often).
	cmp_ok($hot / $updates, '>=', $method eq 'scan' ? 0.95 : 0.9,
		"$method: they are HOT updates (no index entry written)");
	# Only a non-HOT update writes index entries, and its entries can split
	# at most one page of each index.
	my $indexes = $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_index WHERE indrelid = 'invicti_scans'::regclass");
	cmp_ok($changed->{idx} - $before->{idx}, '<=', ($updates - $hot) * $indexes * 8192,
		"$method: indexes grew only by what non-HOT updates wrote");
	diag(sprintf('%s: %d changes: %d HOT of %d updates, table %d kB -> %d kB',
			$method, 3 * $n, $hot, $updates, $after->{size} / 1024, $changed->{size} / 1024));
	$node->stop;
	$sim->stop;
}

done_testing();
