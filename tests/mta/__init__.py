"""Real mail servers for the test suite: a private Postfix instance, an unpacked Exim daemon,
and aiosmtpd stand-ins for the "remote" domain and for bounced.

- ``postfix.PostfixInstance`` / ``exim.EximInstance`` (common API in ``base.MTAInstance``):
  ``start()``/``stop()`` or ``with``, ``host``/``port`` (SMTP on 127.0.0.1), ``send()``,
  ``flush()``, ``queue_count()``, ``wait_queue_empty()``, ``wait_for_log()``, ``log_mark()``,
  ``processes()``. ``factory.make_mta(kind, ...)`` builds either with the same routing.
- ``remote.RemoteServer``: rejects unknown*/blocked*/full*, accepts the rest.
- ``remote.CaptureServer``: records what reaches the bounce-domain port.
- ``dsn.delivery_status()``: the per-recipient fields of a DSN, for assertions.
- ``fixtures``: ``mta_remote``, ``mta_capture``, ``mta_factory`` (Postfix and Exim),
  ``postfix_factory``.
- The MTA matrix (tests/test_mta_matrix.py, ``python -m tests.mta.matrix``): ``world`` (a
  scripted DNS and remote, a private resolver), ``scenarios`` (what is sent, the labels by
  construction), ``adapters`` (Postfix, Exim) and one module per other MTA (``sendmail``,
  ``opensmtpd``, ``courier``, ``dma``, ``chasquid``), ``matrix`` (run them all, normalise,
  write tests/mta_corpus).

    with RemoteServer() as remote, CaptureServer() as bounced_standin:
        with PostfixInstance(remote_port=remote.port, bounce_port=bounced_standin.port) as mta:
            mta.send("bounce-xyz@bounces.example.test", ["unknown1@remote.test"])
            bounced_standin.wait_for(1, timeout=20)
"""
