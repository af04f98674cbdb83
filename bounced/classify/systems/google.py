"""Gmail and Google Workspace: replies of Google's SMTP servers whose reason is Google's own
reading of them (support.google.com/a/answer/3726730), where the status or the words alone
would name another. Every reply of those servers ends with Google's tag "- gsmtp", which the
generic sentences below must carry (so they hold only for Google's servers, whatever domain
a Workspace customer receives on); the sentences only Google writes need no tag."""

from bounced.classify.systems import System

SYSTEM = System(
    name="google",
    replies=(
        # our client broke the SMTP dialogue (not the receiver's policy: "violation")
        (r"smtp protocol violation\b.{0,300}?- gsmtp", "syntaxerror"),
        (r"too many unauthenticated commands\b.{0,300}?- gsmtp", "syntaxerror"),
        # the server is busy for now (a 4.4.5 is not the mailbox's store being full)
        (r"server busy, try again later\b.{0,300}?- gsmtp", "systemerror"),
        # limits of one transaction: send again, in another transaction
        (r"multiple destination domains per transaction is unsupported", "systemerror"),
        (r"domain policy size per transaction exceeded", "systemerror"),
    ),
)
