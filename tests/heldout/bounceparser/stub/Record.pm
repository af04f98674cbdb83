package Record;
# Writes one JSON line per expectation an upstream test states about a corpus file.
# Used only by ../generate.py: the upstream tests run against these stubs instead of the
# parser, so what they assert becomes data (the parser itself never runs).
use strict;
use warnings;
use JSON::PP ();

our $TEST = $0;
my $json = JSON::PP->new->canonical;

sub out {
    my (%row) = @_;
    $row{test} = $TEST;
    print $json->encode(\%row), "\n";
}

# A value the parser stub returns: which file and which field of its result it stands for.
package Record::Value;
use overload
    '!'    => sub { Record::Value->new(%{ $_[0] }, negated => !$_[0]{negated}) },
    '>='   => sub { Record::out(file => $_[0]{file}, field => "min_$_[0]{field}",
                                value => $_[1], options => $_[0]{options});
                    1 },
    'bool' => sub { 1 },
    '""'   => sub { "<$_[0]{field} of $_[0]{file}>" };

sub new { my ($class, %self) = @_; return bless {%self}, $class }

1;
