# pg_dump and pg_restore keep what the extension holds: every scan and
# finding, exactly, and the id sequence, so that a launch on the restored
# server gets a new id.  The restored server's worker carries on with the
# scan that was still running.
use strict;
use warnings;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use InvictiTest;

my %target = map { $_ => target_uuid("dump-$_") } qw(one two parked);
my $missing = target_uuid('dump-missing');
my $sim = start_simulator(
	targets => [
		{ target_id => $target{one}, outcome => 'completed' },
		{ target_id => $target{two}, outcome => 'completed',
		  severity_counts => { critical => 0, high => 3, medium => 1, low => 2, info => 0 } },
		{ target_id => $target{parked}, outcome => 'paused' },
	]);
my $source = new_node('dump_source', sim => $sim);

my %id;
$id{$_} = launch($source, $target{$_}) for qw(one two parked);
$id{missing} = launch($source, $missing);
# a rolled-back launch leaves a gap in the sequence: the dump must keep it
$source->safe_psql('postgres',
	"BEGIN; SELECT invicti_launch_scan('$target{one}', '" . PROFILE_HIGH_RISK . "'); ROLLBACK");
wait_for($source, "
	SELECT bool_and(CASE id WHEN $id{parked} THEN status = 'paused' AND worker_state = 'poll'
	                        WHEN $id{missing} THEN status = 'error' AND worker_state = 'done'
	                        ELSE status = 'completed' AND findings_imported_at IS NOT NULL END)
	FROM invicti_scans",
	'scans finished, findings imported, one parked and still polled');

# What the restore must reproduce.
my $DATA = "
	SELECT json_build_object(
	    'scans', (SELECT json_agg(s ORDER BY id) FROM invicti_scans s),
	    'findings', (SELECT json_agg(v ORDER BY scan_session_id, vuln_id)
	                 FROM invicti_vulnerabilities v),
	    'sequence', (SELECT row_to_json(q) FROM (SELECT last_value, is_called
	                                             FROM invicti_scans_id_seq) q))";
my $data = $source->safe_psql('postgres', $DATA);
my $d = decode_json($data);
is(scalar(@{ $d->{scans} }), 4, 'four scans to dump');
cmp_ok(scalar(@{ $d->{findings} }), '>=', 6, 'with their findings');
is($d->{sequence}{last_value}, $id{missing} + 1, 'the sequence is past the rolled-back id');

my $dir = PostgreSQL::Test::Utils::tempdir('dump');
$source->command_ok(
	[ 'pg_dump', '-Fc', '--no-sync', '-d', $source->connstr('postgres'), '-f', "$dir/db.dump" ],
	'pg_dump -Fc');
$source->command_ok(
	[ 'pg_dump', '--no-sync', '-d', $source->connstr('postgres'), '-f', "$dir/db.sql" ],
	'pg_dump, plain');
my $plain = slurp_file("$dir/db.sql");
like($plain, qr/^CREATE EXTENSION IF NOT EXISTS invicti_scan WITH SCHEMA public;$/m,
	'the dump creates the extension');
like($plain, qr/^COPY public\.invicti_scans \(/m, '... and holds the scans');
like($plain, qr/^SELECT pg_catalog\.setval\('public\.invicti_scans_id_seq', $d->{sequence}{last_value}, true\);$/m,
	'... and the sequence');
# A migration: the old server is gone before the new one starts.
$source->stop;

my $target = new_node('dump_target', sim => $sim, no_extension => 1);
my $seq = $sim->next_seq;
$target->command_ok(
	[ 'pg_restore', '--exit-on-error', '--single-transaction', '-d',
	  $target->connstr('postgres'), "$dir/db.dump" ],
	'pg_restore --single-transaction into the worker\'s database');
is($target->safe_psql('postgres', $DATA), $data,
	'every scan, every finding and the sequence restored exactly');
is($target->safe_psql('postgres',
		"SELECT extversion = default_version FROM pg_extension e
		 JOIN pg_available_extensions a ON a.name = e.extname WHERE extname = 'invicti_scan'"),
	't', 'the extension at the library\'s version');

# The restored worker takes up the parked scan...
my ($parked_scan) = map { $_->{scan_id} } grep { $_->{id} == $id{parked} } @{ $d->{scans} };
wait_until(
	sub { refresh_times(0, 9e9, $sim->log_entries($seq))->{$parked_scan} },
	'the restored server polls the scan that was still running');
# ...and a new launch gets a new id.
my $new = launch($target, $target{two});
is($new, $d->{sequence}{last_value} + 1, 'a launch after the restore gets the next id, no duplicate key');
wait_for($target, "SELECT status = 'completed' AND findings_imported_at IS NOT NULL
                   FROM invicti_scans WHERE id = $new",
	'... and completes');
is($target->safe_psql('postgres',
		"SELECT concat_ws(',', invicti_scan_passed($id{one}, 'info') IS NOT NULL,
		                  invicti_scan_passed($id{two}), invicti_scan_passed($new))"),
	't,f,f', 'invicti_scan_passed() on restored and new scans');
is($sim->scans->{$parked_scan}{status}, 'paused', 'nothing relaunched the parked scan');
is(scalar(grep { $_->{method} eq 'POST' } $sim->log_entries($seq)), 1,
	'the restored server sent one launch: the new one');

# A plain dump through psql, into another database, restores the same rows.
$target->safe_psql('postgres', 'CREATE DATABASE plain');
my ($rc, $out, $err) = $target->psql('plain', $plain, on_error_stop => 1);
is($rc, 0, 'a plain dump restores through psql') or diag($err);
is($target->safe_psql('plain', $DATA), $data, '... with every row and the sequence');

done_testing();
