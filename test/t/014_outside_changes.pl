# Changes made to invicti_scans outside the worker and the SQL API reach
# the worker when they commit (the invicti_scans_changed trigger), not at
# some later periodic look: a deleted running scan stops being polled, a
# finished one put back to 'poll' is polled again, and findings queued for
# import by hand are imported.  The waits are generous; what is checked is
# that it happens at all, long before the minute the worker used to wait.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use InvictiTest;

my %target = map { $_ => target_uuid("outside-$_") } qw(kept deleted done);
my $sim = start_simulator(
	targets => [
		{ target_id => $target{kept}, outcome => 'stuck_unknown' },
		{ target_id => $target{deleted}, outcome => 'stuck_unknown' },
		{ target_id => $target{done}, outcome => 'completed' },
	]);
# scan by scan, so that each GET names the scan it refreshes (by list, the
# ended scans' pages would refresh it too: 019 tests that way)
my $node = new_node('outside', sim => $sim,
	settings => { 'invicti_scan.poll_method' => 'scan' });

sub sql { return $node->safe_psql('postgres', $_[0]) }

my %id = map { $_ => launch($node, $target{$_}) } qw(kept deleted done);
wait_for($node, "
	SELECT bool_and(CASE WHEN id = $id{done}
	                     THEN status = 'completed' AND findings_imported_at IS NOT NULL
	                     ELSE status = 'under_review' END)
	FROM invicti_scans",
	'two scans parked, one completed with its findings');
my %scan = map { $_ => sql("SELECT scan_id FROM invicti_scans WHERE id = $id{$_}") } keys %id;

# GETs of one scan since a log position.
sub polls_of
{
	my ($which, $seq) = @_;
	return scalar grep { $_->{method} eq 'GET' && $_->{path} eq "/api/v1/scans/$scan{$which}" }
	  $sim->log_entries($seq);
}

# ---- a DELETE stops the polls of that scan, and only of that one ----------
sql("DELETE FROM invicti_scans WHERE id = $id{deleted}");
sleep 1.5;    # a poll already on the wire may still land
my $seq = $sim->next_seq;
sleep 4;
is(polls_of('deleted', $seq), 0, 'a deleted running scan is no longer polled');
cmp_ok(polls_of('kept', $seq), '>=', 2, 'the other running scan still is');

# ---- a finished scan put back to 'poll' is polled again, and settles -------
my $findings = sql("SELECT count(*) FROM invicti_vulnerabilities WHERE scan_row_id = $id{done}");
cmp_ok($findings, '>', 0, "$findings findings imported for the completed scan");
$seq = $sim->next_seq;
sql("UPDATE invicti_scans SET worker_state = 'poll' WHERE id = $id{done}");
wait_until(sub { polls_of('done', $seq) >= 1 },
	'a scan put back to poll by hand is polled again at commit', 20);
wait_for($node, "SELECT worker_state = 'done' AND status = 'completed'
                 FROM invicti_scans WHERE id = $id{done}",
	'... and, still completed, goes back to done');
my $polls = polls_of('done', $seq);
sleep 3;
is(polls_of('done', $seq), $polls, '... and is not polled any more');

# ---- findings queued for import by hand (README, "Upgrading") -------------
sql("BEGIN;
     DELETE FROM invicti_vulnerabilities WHERE scan_row_id = $id{done};
     UPDATE invicti_scans SET worker_state = 'import', findings_imported_at = NULL,
            next_attempt_at = now() WHERE id = $id{done};
     COMMIT;");
wait_for($node, "SELECT findings_imported_at IS NOT NULL AND worker_state = 'done'
                 FROM invicti_scans WHERE id = $id{done}",
	'findings queued by hand are imported at commit', 20);
is(sql("SELECT count(*) FROM invicti_vulnerabilities WHERE scan_row_id = $id{done}"),
	$findings, '... all of them, once');

# ---- a rolled-back change tells the worker nothing -----------------------
sql("BEGIN; UPDATE invicti_scans SET worker_state = 'poll' WHERE id = $id{done}; ROLLBACK;");
$seq = $sim->next_seq;
sleep 2;
is(polls_of('done', $seq), 0, 'a rolled-back change starts no poll');

is(sql("SELECT count(*) FROM invicti_scans WHERE last_error IS NOT NULL"), 0,
	'no row has an error');
done_testing();
