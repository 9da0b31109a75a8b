#!/bin/bash
# perl under LD_PRELOAD: hashes, strings, regexes, sorting; output checked
# against known values and against a run without hakmem.
# Under bazel test the script runs from the runfiles tree as tests/<target>.
here="${TEST_SRCDIR:+$TEST_SRCDIR/$TEST_WORKSPACE/tests/programs}"
source "${here:-$(dirname "$0")}/common.sh"
PERL=/usr/bin/perl

cat >"$TMP/work.pl" <<'PL'
use strict;
use warnings;

my %h;
$h{"key" . ($_ * 7919 % 100003)} += $_ for 0 .. 299999;
my $sum = 0;
$sum += $_ for values %h;
print "hash: ", scalar(keys %h), " $sum\n";

my $s = join("", map { $_ x ($_ % 17) } 0 .. 59999);
print "string: ", length($s), "\n";
my $sevens = () = $s =~ /7/g;
(my $t = $s) =~ s/7/seven/g;
print "regex: ", (length($t) - length($s) == 4 * $sevens ? "ok" : "bad"), " $sevens\n";

my @sorted = sort { $a <=> $b } map { ($_ * 7919) % 100003 } 0 .. 99999;
my $ok = 1;
for my $i (1 .. $#sorted) { $ok = 0 if $sorted[$i - 1] > $sorted[$i]; }
print "sort: ", ($ok ? "ok" : "bad"), " $sorted[0] $sorted[-1]\n";

my %count;
$count{$_}++ for split /,/, join(",", map { "w" . ($_ % 1000) } 0 .. 199999);
print "words: ", scalar(keys %count), " $count{w7}\n";

my @aoa = map { [ ($_) x ($_ % 50) ] } 0 .. 49999;
my $cells = 0;
$cells += scalar(@$_) for @aoa;
print "arrays: $cells\n";
delete $h{"key$_"} for grep { $_ % 2 } 0 .. 100002;
print "after delete: ", scalar(keys %h), "\n";
print "done\n";
PL

run_preloaded work "$PERL" "$TMP/work.pl"
run_plain work "$PERL" "$TMP/work.pl"
expect_line work "hash: 100003 44999850000"
expect_line work "string: 2311042"
expect_line work "words: 1000 200"
# 0 x 0 + 1 x 1 + ... : every i in 0..49999 contributes i % 50 cells.
expect_line work "arrays: $((1000 * 49 * 50 / 2))"
expect_line work "after delete: 50002"
expect_line work "done"
grep -q "^sort: ok 0 " "$TMP/work.out" || fail "perl sort"
grep -q "^regex: ok " "$TMP/work.out" || fail "perl regex"
same_output work
finish
