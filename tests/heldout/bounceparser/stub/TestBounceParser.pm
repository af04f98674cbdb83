package TestBounceParser;
# Stub of the upstream t/TestBounceParser.pm for ../generate.py: check_report records the
# expectations it is given instead of checking them.
use strict;
use warnings;
use Exporter 'import';
use Record;
use Mail::DeliveryStatus::BounceParser;
our @EXPORT = qw(readfile check_report);

sub readfile { return "FILE:$_[0]" }

sub check_report {
    my ($filename, %expectations) = @_;
    for my $field (sort keys %expectations) {
        next if $field =~ /^todo_/;
        my $todo = $field eq 'is_bounce' ? $expectations{todo_is_bounce}
                 : $field eq 'std_reason' ? $expectations{todo_std_reason} : undef;
        Record::out(file => $filename, field => $field, value => $expectations{$field},
                    todo => $todo);
    }
    return Mail::DeliveryStatus::BounceParser->new("FILE:$filename");
}
1;
