package Mail::DeliveryStatus::BounceParser;
# Stub for ../generate.py: returns values that stand for "field F of file X".
use strict;
use warnings;
use Record;
our $EMAIL_ADDR_REGEX = qr/(.+)/;

sub new {
    my ($class, $message, $options) = @_;
    my $file = $message =~ /^FILE:(.*)$/ ? $1 : die "not a stub message: $message";
    return bless { file => $file, options => $options }, $class;
}
sub _v { my ($self, $field) = @_;
         Record::Value->new(file => $self->{file}, field => $field, options => $self->{options}) }
sub is_bounce       { $_[0]->_v('is_bounce') }
sub addresses       { $_[0]->_v('addresses') }
sub orig_message_id { $_[0]->_v('orig_message_id') }
sub orig_message    { $_[0] }
sub orig_header     { $_[0] }
sub orig_text       { $_[0]->_v('orig_text') }
sub as_string       { $_[0]->_v('orig_as_string') }
sub reports {
    my $self = shift;
    return Mail::DeliveryStatus::BounceParser::Report->new($self) unless wantarray;
    return (Mail::DeliveryStatus::BounceParser::Report->new($self));
}

package Mail::DeliveryStatus::BounceParser::Report;
sub new { my ($class, $bounce) = @_; return bless { bounce => $bounce }, $class }
sub get { my ($self, $field) = @_; return $self->{bounce}->_v($field) }
1;
