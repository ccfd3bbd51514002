# A failover of an asynchronous HA pair must not launch anything twice.
#
# Ten launches are committed on the primary while the API is unreachable
# (each tried, refused, queued again); the standby replays that and then
# loses contact.  The API comes back, the primary sends the ten and five
# more, and crashes.  The standby, which never saw those sends, is promoted:
# it must notice that it is not the server that sent (a new WAL timeline),
# reconcile the ten with the API and adopt the scans the old primary
# started, sending none of them again; the five it never heard of are
# listed in invicti_untracked_scans.
use strict;
use warnings;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use InvictiTest;

my @queued = map { target_uuid("failover-queued-$_") } 1 .. 10;
my @late = map { target_uuid("failover-late-$_") } 1 .. 5;
my $after = target_uuid('failover-after');
my $sim = start_simulator(
	targets => [ map { { target_id => $_, outcome => 'running' } } @queued, @late, $after ]);

my $primary = new_node('primary', sim => $sim, allows_streaming => 1);
$primary->backup('bkp');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'bkp', has_streaming => 1);
$standby->start;
my $identity = $primary->safe_psql('postgres',
	"SELECT system_identifier || '|' || timeline FROM invicti_server_identity()");
wait_for($primary,
	"SELECT count(*) = 1 FROM invicti_server_history
	 WHERE system_identifier || '|' || timeline = '$identity' AND reconciled_launches = 0",
	'the worker recorded the server it first ran on');

# --- ten launches while the API is down: tried, refused, queued again -------
$sim->outage(down => JSON::PP::true);
my @ids = launch_many($primary, @queued);
my $in = join ',', @ids;
wait_for($primary,
	"SELECT bool_and(attempts >= 1 AND last_error IS NOT NULL) FROM invicti_scans WHERE id IN ($in)",
	'primary: every launch was tried and refused');

# hold the primary's worker still, so that the standby replays the rows
# as 'launch' and not mid-attempt
my $offset = -s $primary->logfile;
$primary->append_conf('postgresql.conf', "invicti_scan.base_url = ''\n");
$primary->reload;
$primary->wait_for_log(qr/not sending requests: invicti_scan\.base_url is not set/, $offset);
wait_for($primary,
	"SELECT bool_and(worker_state = 'launch') FROM invicti_scans WHERE id IN ($in)",
	'primary: the ten are queued, none in flight');
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres',
		"SELECT count(*) FROM invicti_scans WHERE id IN ($in) AND worker_state = 'launch'
		   AND attempts >= 1 AND scan_id IS NULL"),
	'10', 'standby: the ten replayed as tried, unsent, queued');
$standby->stop('fast');

# --- the API is back: the primary sends the ten and five more, then crashes --
$sim->outage(down => JSON::PP::false);
$primary->append_conf('postgresql.conf',
	"invicti_scan.base_url = '" . $sim->api_url . "'\n");
$primary->reload;
my @late_ids = launch_many($primary, @late);
my $all = join ',', @ids, @late_ids;
wait_for($primary,
	"SELECT bool_and(worker_state = 'poll' AND scan_id IS NOT NULL) FROM invicti_scans WHERE id IN ($all)",
	'primary: all fifteen were launched');
my %scan_of = split /[|\n]/, $primary->safe_psql('postgres',
	"SELECT id, scan_id FROM invicti_scans WHERE id IN ($in)");
$primary->stop('immediate');
is(scalar(keys %{ $sim->scans }), 15, 'the server has fifteen scans');

# --- the standby is promoted, as an HA manager does ------------------------
my $log_offset = -s $standby->logfile;
$standby->start;
my $promoted_seq = $sim->next_seq;
$standby->promote;
wait_for($standby,
	"SELECT count(*) = 10 FROM invicti_scans WHERE id IN ($in) AND worker_state = 'poll'",
	'promoted: the ten queued launches are resolved');
is($standby->safe_psql('postgres',
		"SELECT count(*) FROM invicti_scans WHERE id IN ($in)
		 AND last_error IS NULL AND status = 'processing'"),
	'10', 'promoted: each is a running scan, without an error');
my %on_standby = split /[|\n]/, $standby->safe_psql('postgres',
	"SELECT id, scan_id FROM invicti_scans WHERE id IN ($in)");
is(scalar(grep { ($on_standby{$_} // '') eq $scan_of{$_} } @ids), 10,
	'promoted: each adopted the scan the old primary started for it');

my @after = $sim->log_entries($promoted_seq);
is(scalar(grep { $_->{method} eq 'POST' && $_->{path} eq '/api/v1/scans' } @after), 0,
	'promoted: not one launch was sent again');
is(scalar(grep { $_->{method} eq 'GET' && $_->{path} eq '/api/v1/scans'
			  && ($_->{query} // '') =~ /q=target_id:/ } @after), 10,
	'promoted: each was reconciled with the scan list, once');
my %per_target;
$per_target{ $_->{target_id} }++ for values %{ $sim->scans };
is(scalar(grep { $_ != 1 } values %per_target), 0, 'no target was launched twice');

is($standby->safe_psql('postgres',
		'SELECT timeline || \'|\' || reconciled_launches FROM invicti_server_history
		 ORDER BY id DESC LIMIT 1'),
	'2|10', 'invicti_server_history: the new timeline, with the ten it checked');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM invicti_server_history'),
	'2', 'invicti_server_history: one row per server the worker sent from');
ok(log_contains($standby,
		qr/this server is not the one that last sent requests: the WAL timeline changed from 1 to 2/,
		$log_offset),
	'promoted: the log says why the queued launches are checked');
ok(log_contains($standby,
		qr/10 queued launches and 0 target requests are checked with Invicti before anything is sent/,
		$log_offset),
	'promoted: the log says how many');

# --- the five the standby never heard of: listed, not tracked ---------------
my $late_list = join ',', map { "'$_'" } sort @late;
wait_for($standby,
	"SELECT count(*) = 5 FROM invicti_untracked_scans",
	'promoted: five untracked scans are listed');
is($standby->safe_psql('postgres',
		"SELECT string_agg(quote_literal(target_id::text), ',' ORDER BY target_id::text)
		 FROM invicti_untracked_scans"),
	$late_list, 'invicti_untracked_scans: exactly the five launched after the standby lost contact');
my %late_scan = map { $_->{target_id} => $_->{scan_id} } values %{ $sim->scans };
is($standby->safe_psql('postgres',
		"SELECT count(*) FROM invicti_untracked_scans
		 WHERE status = 'processing' AND profile_id = '" . PROFILE_HIGH_RISK . "'
		   AND scan_id IN (" . join(',', map { "'$late_scan{$_}'" } @late) . ")"),
	'5', 'invicti_untracked_scans: with their scan ids, profile and status');

# a restart of the promoted server is no failover: nothing is checked again
my $id2 = launch($standby, $after);
$standby->restart;
wait_for($standby,
	"SELECT worker_state = 'poll' FROM invicti_scans WHERE id = $id2", 'after restart: a new launch runs');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM invicti_server_history'),
	'2', 'a plain restart adds no history');

ok(!log_contains($standby, qr/ERROR|PANIC|TRAP/, $log_offset),
	'promoted: no error in the new primary\'s log');

done_testing();
