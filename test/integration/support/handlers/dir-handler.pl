#!/usr/bin/perl
# The reference handler (dir-handler.mjs beside it) for the reap suites' command fixture, in Perl:
# the same resources, fingerprints and answers for list, delete and restore, in a process that
# starts in a few milliseconds of CPU where Node.js takes some 60 (the suites call it hundreds of
# times). Resources are the JSON files of one directory, each file's name its id; the fingerprint
# is the file's inode and a hash of its bytes; a delete removes the file only if the fingerprint
# still matches (or, with --trash, moves it into DIR/.trash and answers a restore handle); a file
# DIR/.fail-deletes makes every delete answer `error`. No visible marker (mark/unmark): those are
# dir-handler.mjs's. Usage: dir-handler.pl DIR [--trash]; the op is $REAPER_OP.
use strict;
use warnings;
use B ();
use Digest::SHA qw(sha256_hex);
use File::Path qw(make_path);
use JSON::PP ();
use Time::HiRes ();

my $dir = $ARGV[0];
my $trash = grep { $_ eq '--trash' } @ARGV[1 .. $#ARGV];
my $op = $ENV{REAPER_OP} // '';
my $json = JSON::PP->new->utf8->canonical;
my @lines = map { $json->decode($_) } grep { /\S/ } do { local $/; my $in = <STDIN>; split /\n/, $in // '' };
my @out;
sub say_ { push @out, $json->encode($_[0]) }

# An id is one file name in the directory; anything else (a path, "..", a dot file) is not a resource.
sub valid { my ($id) = @_; return defined $id && !ref $id && $id =~ /\A[A-Za-z0-9_-][A-Za-z0-9_.-]*\z/ && index($id, '..') < 0 }

# A JSON string (not a number, not a boolean), as `typeof v === 'string'` tells it.
sub is_string { my ($v) = @_; return defined $v && !ref $v && (B::svref_2object(\$v)->FLAGS & B::SVp_POK) }

sub read_resource {
  my ($id) = @_;
  return undef unless valid($id);
  my $file = "$dir/$id";
  my @st = stat $file or return undef;
  return undef unless -f _;
  open my $fh, '<:raw', $file or return undef;
  my $bytes = do { local $/; <$fh> } // '';
  close $fh;
  my $fingerprint = "$st[1]:" . substr(sha256_hex($bytes), 0, 16);
  my $doc = eval { JSON::PP->new->utf8->allow_nonref->decode($bytes) };
  return { id => $id, fingerprint => $fingerprint, createdAt => undef, bytes => length($bytes), unreadable => 'not JSON' } if $@;
  my %attributes;
  if (ref $doc eq 'HASH') {
    $attributes{owner} = $doc->{owner} if is_string($doc->{owner});
    $attributes{protected} = 'yes' if $doc->{protected};
  }
  my $created = ref $doc eq 'HASH' ? $doc->{createdAt} : undef;
  return { id => $id, fingerprint => $fingerprint, createdAt => $created, bytes => length($bytes), attributes => \%attributes };
}

if ($op eq 'list') {
  my $request = $lines[0];
  if ($request->{ids}) {
    for my $id (@{ $request->{ids} }) {
      my $r = read_resource($id);
      say_($r) if $r;
    }
    say_({ next => undef });
  } else {
    my @names;
    if (opendir my $dh, $dir) {
      @names = sort grep { valid($_) } readdir $dh;
      closedir $dh;
    }
    my $after = $request->{cursor};
    my @rest = defined $after ? grep { $_ gt $after } @names : @names;
    my @page = @rest > $request->{limit} ? @rest[0 .. $request->{limit} - 1] : @rest;
    my $last;
    for my $name (@page) {
      my $r = read_resource($name);
      say_($r) if $r;
      $last = $name;
    }
    say_({ next => @rest > @page ? $last : undef });
  }
} elsif ($op eq 'delete') {
  my $failing = -e "$dir/.fail-deletes";
  for my $line (@lines) {
    my ($id, $fingerprint) = @{$line}{qw(id fingerprint)};
    if ($failing) {
      say_({ id => $id, result => 'error', message => 'deletes are failing (.fail-deletes)' });
      next;
    }
    my $r = read_resource($id);
    if (!$r) { say_({ id => $id, result => 'absent' }) }
    elsif ($r->{fingerprint} ne ($fingerprint // q())) { say_({ id => $id, result => 'changed' }) }
    elsif ($trash) {
      make_path("$dir/.trash");
      my $handle = "$id." . int(Time::HiRes::time() * 1000);
      rename "$dir/$id", "$dir/.trash/$handle" or die "rename $id: $!\n";
      say_({ id => $id, result => 'deleted', restoreHandle => $handle });
    } else {
      unlink "$dir/$id" or die "unlink $id: $!\n";
      say_({ id => $id, result => 'deleted' });
    }
  }
} elsif ($op eq 'restore') {
  for my $line (@lines) {
    my ($id, $handle) = @{$line}{qw(id handle)};
    my $from = valid($handle) ? "$dir/.trash/$handle" : undef;
    if (!valid($id) || !defined $from || !-e $from) { say_({ id => $id, result => 'error', message => 'no such restore handle' }) }
    elsif (-e "$dir/$id") { say_({ id => $id, result => 'error', message => 'a resource of that id exists' }) }
    else {
      rename $from, "$dir/$id" or die "rename $handle: $!\n";
      say_({ id => $id, result => 'restored' });
    }
  }
} else {
  print STDERR "unknown op $op\n";
  exit 2;
}
binmode STDOUT;
print map { "$_\n" } @out;
