# A launch is never sent twice when the first may have reached the server:
# unknown outcomes are reconciled against the server's scan list, crashes
# between sending and recording lose nothing, and only launches that
# provably never arrived are sent again.
use strict;
use warnings;
use HTTP::Tiny;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use InvictiTest;

my @targets = map { target_uuid("once-$_") } 1 .. 40;
my $sim = start_simulator(
	time_scale => 0.05,
	targets => [ map { { target_id => $_, outcome => 'completed' } } @targets ]);
my $node = new_node('once', sim => $sim,
	settings => { restart_after_crash => 'on' });

# Every row maps to its own scan on the server and every scan to one row;
# per target, exactly one scan was created.
sub check_one_scan_per_row
{
	my ($what, @ids) = @_;
	my $in = join ',', @ids;
	wait_for($node,
		"SELECT bool_and(status = 'completed') FROM invicti_scans WHERE id IN ($in)",
		"$what: every scan completed", 90);
	my %scan_of_row = split /[|\n]/, $node->safe_psql('postgres',
		"SELECT id, scan_id FROM invicti_scans WHERE id IN ($in)");
	my %target_of_row = split /[|\n]/, $node->safe_psql('postgres',
		"SELECT id, target_id FROM invicti_scans WHERE id IN ($in)");
	my $sims = $sim->scans;
	my %created_per_target;
	$created_per_target{ $_->{target_id} }++ for values %$sims;
	my %seen;
	my $ok = 1;
	for my $row (@ids)
	{
		my $scan = $sims->{ $scan_of_row{$row} // '' };
		$ok &&= $scan && $scan->{target_id} eq $target_of_row{$row}
		  && !$seen{ $scan_of_row{$row} }++
		  && $created_per_target{ $target_of_row{$row} } == 1;
		diag("row $row: scan " . ($scan_of_row{$row} // 'none')
			  . ", scans created for its target: "
			  . ($created_per_target{ $target_of_row{$row} } // 0))
		  unless $ok;
	}
	ok($ok, "$what: one scan created per row, none twice");
}

my $next = 0;
sub fresh_target { return $targets[ $next++ ] }

# --- unknown outcomes on single launches ---------------------------------
for my $case (
	[ 'HTTP 500 after creating the scan', { fault => 'status', status => 500, process => JSON::PP::true }, 1 ],
	[ 'connection dropped after creating the scan', { fault => 'drop', when => 'after' }, 1 ],
	[ 'timeout after creating the scan', { fault => 'latency', ms => 6000, when => 'after' }, 1 ],
	[ '201 with a garbage body', { fault => 'garbage', status => 201 }, 1 ],
	[ 'connection dropped before processing', { fault => 'drop', when => 'before' }, 2 ],
	[ 'HTTP 502 before processing', { fault => 'status', status => 502 }, 2 ])
{
	my ($name, $rule, $posts) = @$case;
	my $target = fresh_target();
	$sim->faults({ match => { method => 'POST', path => '^/api/v1/scans$' }, count => 1, %$rule });
	my $seq = $sim->next_seq;
	my $id = launch($node, $target);
	check_one_scan_per_row($name, $id);
	my @log = $sim->log_entries($seq);
	is(scalar(grep { $_->{method} eq 'POST' } @log), $posts,
		"$name: $posts POST" . ($posts > 1 ? 's (the first provably created nothing)' : ''));
	ok((grep { $_->{method} eq 'GET' && $_->{path} eq '/api/v1/scans'
			  && $_->{query} =~ /(^|&)q=target_id:\Q$target\E/ } @log),
		"$name: the outcome was reconciled with the scan list");
}

# --- reconciliation follows every page of the list, in both paging styles --
for my $style ('cursors', 'next_cursor', 'next_cursor_int')
{
	$sim->config(pagination => $style);
	my $target = fresh_target();
	# 150 older scans of the same target with another profile fill two pages
	my $http = HTTP::Tiny->new;
	for (1 .. 150)
	{
		$http->post($sim->api_url . '/api/v1/scans', {
			headers => { 'X-Auth' => TOKEN, 'content-type' => 'application/json' },
			content => encode_json({
				user_authorized_to_scan => 'yes', target_id => $target,
				profile_id => '11111111-1111-1111-1111-111111111111',
				schedule => { disable => JSON::PP::false, time_sensitive => JSON::PP::false } }) });
	}
	$sim->faults({ match => { method => 'POST', path => '^/api/v1/scans$' }, count => 1,
		fault => 'drop', when => 'after' });
	my $seq = $sim->next_seq;
	my $id = launch($node, $target);
	wait_for($node, "SELECT status = 'completed' FROM invicti_scans WHERE id = $id",
		"paging ($style): adopted and completed", 60);
	my @lists = grep { $_->{method} eq 'GET' && $_->{path} eq '/api/v1/scans' }
	  $sim->log_entries($seq);
	is(scalar(@lists), 2, "paging ($style): both pages of the list were read");
	like($lists[1]{query}, qr/(^|&)c=/, "paging ($style): the second page by cursor");
	is(scalar(grep { $_->{method} eq 'POST' } $sim->log_entries($seq)), 1,
		"paging ($style): no second launch");
	is(scan_row($node, $id)->{profile_id}, InvictiTest::PROFILE_HIGH_RISK,
		"paging ($style): the adopted scan has this row's profile");
	my $s = $sim->scans->{ scan_row($node, $id)->{scan_id} };
	is($s->{profile_id}, InvictiTest::PROFILE_HIGH_RISK,
		"paging ($style): the scan of another profile was not adopted");
}
$sim->config(pagination => 'cursors');

# --- the worker is SIGKILLed while launches are in flight -----------------
$sim->faults({ match => { method => 'POST', path => '^/api/v1/scans$' },
	fault => 'latency', ms => 1500, when => 'after' });
my @batch = map { fresh_target() } 1 .. 12;
my @ids = launch_many($node, @batch);
wait_for($node,
	"SELECT count(*) >= 6 FROM invicti_scans WHERE worker_state = 'sending'",
	'launches are in flight');
my $pid = worker_pid($node);
is(kill('KILL', $pid), 1, "worker $pid killed with SIGKILL");
wait_worker_back($node, $pid);
$sim->faults();
check_one_scan_per_row('SIGKILL during launches', @ids);

# --- an immediate-mode restart while launches are in flight ---------------
$sim->faults({ match => { method => 'POST', path => '^/api/v1/scans$' },
	fault => 'latency', ms => 1500, when => 'after' });
@batch = map { fresh_target() } 1 .. 12;
@ids = launch_many($node, @batch);
wait_for($node,
	"SELECT count(*) >= 6 FROM invicti_scans WHERE worker_state = 'sending'",
	'launches are in flight again');
$node->stop('immediate');
$node->start;
$sim->faults();
check_one_scan_per_row('immediate restart during launches', @ids);

# --- a server that answers with a scan id another row already tracks ------
# (a second simulator with the same seed hands out the same ids again)
my $twin = start_simulator(time_scale => 0.05,
	targets => [ map { { target_id => $_, outcome => 'completed' } } @targets ]);
$node->append_conf('postgresql.conf', "invicti_scan.base_url = '" . $twin->api_url . "'");
$node->reload;
my $offset = -s $node->logfile;
my $dup = launch($node, fresh_target());
wait_for($node, "SELECT status = 'error' FROM invicti_scans WHERE id = $dup",
	'a repeated scan id ends the launch in status error');
like(scan_row($node, $dup)->{last_error},
	qr/answered with scan id \S+, which row \d+ already tracks; not launching again/,
	'last_error names the scan id and the row that has it');
is(scalar($twin->launches), 1, 'and it was not sent again');
ok(!log_contains($node, qr/could not record/, $offset), 'recorded cleanly, no retry loop');
$node->append_conf('postgresql.conf', "invicti_scan.base_url = '" . $sim->api_url . "'");
$node->reload;
my $after = launch($node, fresh_target());
wait_for($node, "SELECT status = 'completed' FROM invicti_scans WHERE id = $after",
	'the worker goes on with the next launch');

is($node->safe_psql('postgres',
		"SELECT count(*) FROM invicti_scans WHERE worker_state <> 'done'"),
	'0', 'no row left behind');
ok(!log_contains($node, qr/TRAP|PANIC|terminated by signal 11/), 'no crash but the one we caused');

done_testing();
