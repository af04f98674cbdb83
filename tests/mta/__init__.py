"""Real mail servers for the test suite: a private Postfix instance, an unpacked Exim, and
aiosmtpd stand-ins for the "remote" domain and for bounced.

Typical use (see ``tests/test_postfix_harness.py``)::

    with RemoteServer() as remote, CaptureServer() as bounced_standin:
        with PostfixInstance(remote_port=remote.port, bounce_port=bounced_standin.port) as mta:
            mta.send("bounce-xyz@bounces.example.test", ["unknown1@remote.test"])
            bounced_standin.wait_for(1, timeout=20)
"""
