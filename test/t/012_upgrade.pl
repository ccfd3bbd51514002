# The upgrade chain with data in place: install the first released version
# (1.0), put rows in every state its worker writes, then walk
# pg_extension_update_paths() one version at a time to the library's
# version.  Every old column of every row survives each step; the worker,
# which waits while the versions differ, then carries on with every row;
# the new objects work on old rows; and the upgraded schema is the schema of
# a fresh install, object for object.
use strict;
use warnings;
use HTTP::Tiny;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use InvictiTest;

my $FIRST = '1.0';
my $json = JSON::PP->new->canonical;

# One target per kind of row the 1.0 worker leaves behind.
my %target = map { $_ => target_uuid("upgrade-$_") }
  qw(pending poll abort sending done error);
my %counts = (critical => 1, high => 1, medium => 2, low => 0, info => 1);
my $sim = start_simulator(
	targets => [
		map { { target_id => $target{$_}, outcome => 'completed', severity_counts => \%counts } }
		  sort keys %target
	]);
my $node = new_node('upgrade', sim => $sim, no_extension => 1);
my $library = $node->safe_psql('postgres',
	"SELECT default_version FROM pg_available_extensions WHERE name = 'invicti_scan'");

# ---- 1.0 ----
my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', "CREATE EXTENSION invicti_scan VERSION '$FIRST'");
is($node->safe_psql('postgres',
		"SELECT extversion FROM pg_extension WHERE extname = 'invicti_scan'"),
	$FIRST, "installed version $FIRST");
wait_until(
	sub {
		log_contains($node,
			qr/WARNING:  invicti_scan worker: the installed extension is version \Q$FIRST\E but the library is version \Q$library\E; waiting/,
			$log_offset);
	},
	"the worker warns that $FIRST is not the library's $library");

my %id;
$id{$_} = launch($node, $target{$_}) for sort keys %target;

# Scans the 1.0 worker had launched: created on the server through its API
# (by this test, not the worker), pinned in 'processing' until released.
my $http = HTTP::Tiny->new(timeout => 30);
sub api_launch
{
	my ($target_id) = @_;
	my $res = $http->post(
		$sim->api_url . '/api/v1/scans',
		{
			headers => { 'x-auth' => TOKEN, 'content-type' => 'application/json' },
			content => encode_json(
				{
					target_id => $target_id,
					profile_id => PROFILE_HIGH_RISK,
					schedule => { disable => JSON::PP::false, time_sensitive => JSON::PP::false },
					user_authorized_to_scan => 'yes'
				})
		});
	die "launch through the API: $res->{status} $res->{content}" unless $res->{status} == 201;
	# the spec puts the new scan's id in Location only
	return ($res->{headers}{location} =~ m{/scans/([0-9a-f-]{36})$})[0];
}
my %sim_scan = map { $_ => api_launch($target{$_}) } qw(poll abort sending);
$sim->control('POST', "/_sim/scans/$sim_scan{$_}/force", { status => 'processing', progress => 40 })
  for qw(poll abort);

# Rows as the 1.0 worker writes them (see its scan_store.c).
$node->safe_psql('postgres', "
	UPDATE invicti_scans SET status = 'launched', worker_state = 'poll',
	    scan_id = '$sim_scan{poll}', launched_at = now(), attempts = 1,
	    last_attempt_at = now(), updated_at = now()
	WHERE id = $id{poll};
	UPDATE invicti_scans SET status = 'processing', worker_state = 'poll',
	    scan_id = '$sim_scan{abort}', scan_session_id = gen_random_uuid(), progress = 40,
	    severity_counts = '{\"critical\": 0, \"high\": 0, \"medium\": 1, \"low\": 0, \"info\": 0}',
	    start_date = now(), launched_at = now(), attempts = 1, last_attempt_at = now(),
	    last_response = '{\"scan_id\": \"$sim_scan{abort}\"}', updated_at = now()
	WHERE id = $id{abort};
	-- the 1.0 worker stopped while this launch was on the wire; it did arrive
	UPDATE invicti_scans SET worker_state = 'sending', attempts = 1,
	    last_attempt_at = now() - interval '2 seconds', updated_at = now()
	WHERE id = $id{sending};
	UPDATE invicti_scans SET status = 'completed', worker_state = 'done',
	    scan_id = gen_random_uuid(), scan_session_id = gen_random_uuid(), progress = 100,
	    severity_counts = '{\"critical\": 0, \"high\": 2, \"medium\": 3, \"low\": 0, \"info\": 7}',
	    start_date = now() - interval '1 hour', end_date = now() - interval '5 minutes',
	    launched_at = now() - interval '1 hour', attempts = 1,
	    last_attempt_at = now() - interval '1 hour',
	    last_response = '{\"current_session\": {\"status\": \"completed\"}}', updated_at = now()
	WHERE id = $id{done};
	UPDATE invicti_scans SET status = 'error', worker_state = 'done', next_attempt_at = NULL,
	    attempts = 1, last_attempt_at = now(),
	    last_error = 'launch failed: HTTP 404: Target not found', updated_at = now()
	WHERE id = $id{error}");

# Launching woke the worker; it still sends nothing.
sleep 3;
is(scalar(grep { ($_->{user_agent} // '') =~ /^invicti_scan/ } $sim->log_entries), 0,
	'while the versions differ, the worker sends no request');
is($node->safe_psql('postgres',
		"SELECT status || '/' || worker_state FROM invicti_scans WHERE id = $id{pending}"),
	'pending/launch', 'the pending scan stays pending');
is(count_in_log($node, qr/installed extension is version/, $log_offset), 1,
	'one WARNING while waiting, however often it is woken');

# ---- the chain ----
# Every row of every table and sequence the extension dumps, plus the
# version, read in the transaction that upgrades (the worker may change rows
# as soon as the last step commits).
my $SNAPSHOT_FN = q{
CREATE FUNCTION pg_temp.snapshot() RETURNS json LANGUAGE plpgsql AS $f$
DECLARE
    c regclass;
    k "char";
    rows json;
    result jsonb := '{}';
BEGIN
    FOR c, k IN SELECT r.oid::regclass, r.relkind
                FROM pg_extension e, unnest(e.extconfig) cfg(oid)
                JOIN pg_class r ON r.oid = cfg.oid
                WHERE e.extname = 'invicti_scan'
    LOOP
        IF k = 'S' THEN
            EXECUTE format('SELECT row_to_json(s) FROM (SELECT last_value, is_called FROM %s) s', c)
                INTO rows;
        ELSE
            EXECUTE format('SELECT coalesce(json_object_agg(t.ctid::text, t), ''{}'') FROM %s t', c)
                INTO rows;
        END IF;
        result := result || jsonb_build_object(c::text, rows);
    END LOOP;
    RETURN json_build_object('version',
        (SELECT extversion FROM pg_extension WHERE extname = 'invicti_scan'),
        'data', result);
END
$f$;
};
# ctid keys would change with any rewrite; key rows by id where there is one.
sub rows_by_key
{
	my ($table) = @_;
	my %out;
	for my $row (values %$table)
	{
		my $key = exists $row->{id} ? "id=$row->{id}"
		  : exists $row->{vuln_id} ? "$row->{scan_session_id}/$row->{vuln_id}"
		  : $json->encode($row);
		$out{$key} = $row;
	}
	return \%out;
}

sub snapshot
{
	my ($sql_before) = @_;
	my $out = $node->safe_psql('postgres',
		"$SNAPSHOT_FN BEGIN; " . ($sql_before // '') . "; SELECT pg_temp.snapshot(); COMMIT;");
	my $s = decode_json($out);
	for my $rel (keys %{ $s->{data} })
	{
		$s->{data}{$rel} = rows_by_key($s->{data}{$rel})
		  if ref $s->{data}{$rel} eq 'HASH' && !exists $s->{data}{$rel}{last_value};
	}
	return $s;
}

# Every old table and column has the same values; new ones may be added.
sub same_old_data
{
	my ($old, $new, $step) = @_;
	my @problems;
	for my $rel (sort keys %{ $old->{data} })
	{
		my ($o, $n) = ($old->{data}{$rel}, $new->{data}{$rel});
		if (!defined $n) { push @problems, "$rel is gone"; next; }
		if (exists $o->{last_value})
		{
			push @problems, "$rel: sequence moved"
			  unless $json->encode($o) eq $json->encode($n);
			next;
		}
		push @problems, "$rel: " . scalar(keys %$o) . " rows before, " . scalar(keys %$n) . ' after'
		  unless keys %$o == keys %$n;
		for my $key (sort keys %$o)
		{
			my $nrow = $n->{$key};
			if (!$nrow) { push @problems, "$rel $key is gone"; next; }
			for my $col (sort keys %{ $o->{$key} })
			{
				push @problems, "$rel $key: column $col is gone" unless exists $nrow->{$col};
				my ($ov, $nv) = map { $json->encode([ $_->{$col} ]) } $o->{$key}, $nrow;
				push @problems, "$rel $key.$col: $ov became $nv" unless $ov eq $nv;
			}
		}
	}
	is_deeply(\@problems, [], "$step: every old row and column unchanged");
}

my $before = snapshot();
is(scalar(keys %{ $before->{data}{invicti_scans} }), 6, "six rows in $FIRST");

my @path = split /--/, $node->safe_psql('postgres',
	"SELECT path FROM pg_extension_update_paths('invicti_scan')
	 WHERE source = '$FIRST' AND target = '$library'");
ok(@path >= 2 && $path[0] eq $FIRST && $path[-1] eq $library,
	"an update path from $FIRST to $library: @path");
my $prev = $FIRST;
$log_offset = -s $node->logfile;
for my $version (@path[ 1 .. $#path ])
{
	my $after = snapshot("ALTER EXTENSION invicti_scan UPDATE TO '$version'");
	is($after->{version}, $version, "$prev -> $version: extversion is $version");
	same_old_data($before, $after, "$prev -> $version");
	$prev = $version;
}

# ---- the worker carries on ----
my $polls = grep { $_->{worker_state} eq 'poll' } values %{ $before->{data}{invicti_scans} };
wait_until(
	sub {
		log_contains($node,
			qr/invicti_scan worker: using extension invicti_scan \Q$library\E in database "postgres"; $polls running scans to track/,
			$log_offset);
	},
	"the worker takes up $library with the $polls running scans");

wait_for($node, "SELECT status = 'completed' FROM invicti_scans WHERE id = $id{pending}",
	'the pending scan is launched and completes');
wait_for($node,
	"SELECT status = 'processing' AND progress = 40 AND last_response IS NOT NULL
	 FROM invicti_scans WHERE id = $id{poll}",
	'the polled scan is polled again');
is($node->safe_psql('postgres', "SELECT invicti_abort_scan($id{abort})"), 'aborting',
	"invicti_abort_scan() on a scan launched by $FIRST");
$sim->control('POST', "/_sim/scans/$sim_scan{poll}/force", { status => undef });
wait_for($node, "
	SELECT status = 'completed' AND worker_state = 'done' AND findings_imported_at IS NOT NULL
	FROM invicti_scans WHERE id = $id{poll}",
	'released, it completes and its findings are imported');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM invicti_vulnerabilities WHERE scan_row_id = $id{poll}"),
	'5', '... all five of them');
wait_for($node, "SELECT status = 'aborted' AND worker_state = 'done' FROM invicti_scans WHERE id = $id{abort}",
	'the aborted one ends aborted');
is($sim->scans->{ $sim_scan{abort} }{status}, 'aborted', '... on the server too');
wait_for($node, "
	SELECT status = 'completed' AND scan_id = '$sim_scan{sending}'
	FROM invicti_scans WHERE id = $id{sending}",
	'the launch left on the wire is reconciled: the scan it created is adopted');
wait_for($node, "SELECT count(*) = 0 FROM invicti_scans WHERE worker_state <> 'done'",
	'every row finished');
my @posts = $sim->launches;
is_deeply([ map { $_->{target_id} } grep { ($_->{user_agent} // '') =~ /^invicti_scan/ } @posts ],
	[ $target{pending} ], 'the worker sent exactly one launch: the pending one');
# The version the worker waited for is the one it tells the API (both are
# compiled in; a stale object file once made them differ).
my %agents = map { (split / /, $_->{user_agent} // '')[0] => 1 }
  grep { ($_->{user_agent} // '') =~ /^invicti_scan/ } $sim->log_entries;
is_deeply([ sort keys %agents ], ["invicti_scan/$library"],
	"every request's User-Agent names version $library");

# The rows nobody had to touch are as they were; the new objects work on them.
my $now = snapshot();
for my $k (qw(done error))
{
	my ($o, $n) = map { $_->{data}{invicti_scans}{"id=$id{$k}"} } $before, $now;
	is($json->encode({ map { $_ => $n->{$_} } keys %$o }), $json->encode($o),
		"the $k row is unchanged");
	is(join(',', map { $n->{$_} // 'null' } qw(abort_requested_at aborted_by findings_imported_at import_cursor)),
		'null,null,null,null', "the $k row: new columns empty");
}
is($node->safe_psql('postgres',
		"SELECT concat_ws(',', invicti_scan_passed($id{done}), invicti_scan_passed($id{done}, 'critical'),
		                  invicti_scan_passed($id{poll}, 'info'), invicti_scan_passed($id{pending}, 'info'))"),
	'f,t,f,f', "invicti_scan_passed() on rows from $FIRST and after");
my ($rc, $out, $err) = $node->psql('postgres', "SELECT invicti_scan_passed($id{error})");
like($err, qr/scan $id{error} has not completed: its status is error/, 'invicti_scan_passed() refuses the error row');
($rc, $out, $err) = $node->psql('postgres', "SELECT invicti_abort_scan($id{done})");
like($err, qr/already finished with status "completed"/, 'invicti_abort_scan() refuses the finished row');
is($node->safe_psql('postgres',
		"SELECT string_agg(target_id || ':' || status, ',' ORDER BY target_id) FROM invicti_latest_scans"),
	join(',', map { "$target{$_}:" . { pending => 'completed', poll => 'completed',
			abort => 'aborted', sending => 'completed', done => 'completed', error => 'error' }->{$_} }
		  sort { $target{$a} cmp $target{$b} } keys %target),
	'invicti_latest_scans: one row per target');
is($node->safe_psql('postgres',
		"SELECT string_agg(id::text, ',' ORDER BY id) FROM invicti_severity_trend"),
	join(',', sort { $a <=> $b } @id{qw(pending poll sending done)}),
	'invicti_severity_trend: the completed scans, old and new');
is($node->safe_psql('postgres', 'SELECT count(*) FROM invicti_running_scans'), '0',
	'invicti_running_scans: none left');
is($node->safe_psql('postgres', 'SELECT sum(findings) FROM invicti_findings_summary'),
	$node->safe_psql('postgres', 'SELECT count(*) FROM invicti_vulnerabilities'),
	'invicti_findings_summary adds up');
is($node->safe_psql('postgres', "
	SELECT concat_ws(',', worker_pid = (SELECT pid FROM pg_stat_activity
	                                    WHERE backend_type = 'invicti_scan worker'),
	                 requests > 0, requests_by_kind ? 'launch', requests_by_kind ? 'poll',
	                 requests_by_kind ? 'abort', last_success_at IS NOT NULL)
	FROM invicti_scan_stats"),
	't,t,t,t,t,t', 'invicti_scan_stats: the worker and its requests');

# ---- a fresh install next to a copy of the table ---------------------------
# (a LIKE ... INCLUDING ALL copy keeps the constraint names; the 1.1 step
# drops the worker_state check by name, so 1.0 must not pick another one)
$node->safe_psql('postgres', 'CREATE DATABASE squatted');
$node->safe_psql('squatted', "CREATE TABLE kept_copy (worker_state text
	CONSTRAINT invicti_scans_worker_state_check CHECK (worker_state <> ''))");
($rc, $out, $err) = $node->psql('squatted', 'CREATE EXTENSION invicti_scan');
is($rc, 0, 'a fresh install next to a table holding its constraint names') or diag($err);

# ---- the upgraded schema is a fresh install's ----
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
($rc, $out, $err) = $node->psql('fresh', 'CREATE EXTENSION invicti_scan');
is($rc, 0, 'a fresh install in another database');
like($err, qr/WARNING:  the invicti_scan worker runs in database "postgres", not in "fresh"/,
	'... which warns that the worker is elsewhere');

# pg_dump's binary-upgrade mode dumps every member of an extension as its own
# statement (plain dumps only say CREATE EXTENSION): columns in attnum order,
# dropped columns included, defaults, constraints, indexes, triggers,
# policies, grants, comments, functions.  Object ids and transaction ids
# differ between databases; blocks are compared as sets.
sub schema_of
{
	my ($db) = @_;
	my $file = "$PostgreSQL::Test::Utils::log_path/012_upgrade_schema_$db.sql";
	$node->command_ok(
		[ 'pg_dump', '--schema-only', '--binary-upgrade', '--no-sync',
		  '-d', $node->connstr($db), '-f', $file ],
		"pg_dump --schema-only --binary-upgrade of $db");
	my %blocks;
	for my $block (split /^--\n-- (?=Name: )/m, slurp_file($file))
	{
		# object and transaction ids, WAL positions, the psql \restrict key
		$block =~ s/^SELECT pg_catalog\.binary_upgrade_set_next_\w+\(.*\);\n//mg;
		$block =~ s/^\\(?:un)?restrict .*\n//mg;
		$block =~ s/relfrozenxid = '\d+', relminmxid = '\d+'/relfrozenxid = X, relminmxid = X/g;
		$block =~ s/WHERE oid = '\d+';/WHERE oid = X;/g;
		$block =~ s/'\{\d+(?:,\d+)*\}'/'{oids}'/g;
		# the sequence's position is data, compared above
		$block =~ s/^SELECT pg_catalog\.setval\(.*\);\n//mg;
		$block =~ s/\n{2,}/\n/g;
		$block =~ s/^\s+|\s+$//g;
		$blocks{$block}++ if $block ne '';
	}
	return \%blocks;
}
sub schema_diff
{
	my ($x, $y) = @_;
	return ([ grep { !$y->{$_} } sort keys %$x ], [ grep { !$x->{$_} } sort keys %$y ]);
}
my ($upgraded, $fresh) = (schema_of('postgres'), schema_of('fresh'));
ok(keys %$upgraded > 50, 'the dump lists the extension\'s objects one by one ('
	  . scalar(keys %$upgraded) . ' blocks)');
my ($only_upgraded, $only_fresh) = schema_diff($upgraded, $fresh);
is_deeply($only_upgraded, [], 'nothing in the upgraded schema that a fresh install lacks')
  or diag("only in the upgraded database:\n" . join("\n\n", @$only_upgraded));
is_deeply($only_fresh, [], 'nothing in a fresh install that the upgraded schema lacks')
  or diag("only in the fresh database:\n" . join("\n\n", @$only_fresh));

# The comparison is not blind: one changed default in a third database shows.
$node->safe_psql('postgres', 'CREATE DATABASE tampered');
$node->psql('tampered', "CREATE EXTENSION invicti_scan;
	ALTER TABLE invicti_scans ALTER COLUMN attempts SET DEFAULT 1", on_error_die => 1);
my ($only_tampered, $only_fresh2) = schema_diff(schema_of('tampered'), $fresh);
ok(@$only_tampered == 1 && $only_tampered->[0] =~ /attempts integer DEFAULT 1 NOT NULL/
	  && @$only_fresh2 == 1 && $only_fresh2->[0] =~ /attempts integer DEFAULT 0 NOT NULL/,
	'the comparison catches a changed column default')
  or diag(explain([ $only_tampered, $only_fresh2 ]));

# What pg_dump does not show: the extension's own catalog entry and members.
my $ext_sql = "
	SELECT extversion, extrelocatable, extnamespace::regnamespace,
	       (SELECT array_agg(c::regclass::text ORDER BY c::regclass::text) FROM unnest(extconfig) c),
	       extcondition,
	       (SELECT string_agg(pg_describe_object(classid, objid, objsubid), E'\\n'
	                          ORDER BY pg_describe_object(classid, objid, objsubid))
	        FROM pg_depend WHERE refclassid = 'pg_extension'::regclass
	          AND refobjid = e.oid AND deptype = 'e')
	FROM pg_extension e WHERE extname = 'invicti_scan'";
is($node->safe_psql('postgres', $ext_sql), $node->safe_psql('fresh', $ext_sql),
	'same extension entry, configuration tables and member objects');

done_testing();
