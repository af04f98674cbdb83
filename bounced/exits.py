"""The exit statuses of the ``bounced`` command, named.

sysexits.h's where a mail server reads them (``bounced deliver`` under Postfix's pipe(8) or
Exim's pipe transport: 75 keeps the message and retries, 67 and 65 return it), the shell's
conventions elsewhere.
"""

from __future__ import annotations

import os
import signal

EXIT_OK = os.EX_OK  # 0
EXIT_FAIL = 1  # the command failed, or its answer is no (verify: invalid; nothing to release)
EXIT_USAGE = 2  # a usage error (argparse's status)
EX_USAGE = os.EX_USAGE  # 64: deliver: no recipient given
EX_DATAERR = os.EX_DATAERR  # 65: deliver: the message is too large, or empty
EX_NOUSER = os.EX_NOUSER  # 67: deliver: a bad, forged or expired token
EX_TEMPFAIL = os.EX_TEMPFAIL  # 75: deliver: anything temporary, the mail server retries
# What a shell reports for a process ended by a signal (128 + its number).
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130: Ctrl-C
EXIT_SIGPIPE = 128 + signal.SIGPIPE  # 141: the reader of the output went away
