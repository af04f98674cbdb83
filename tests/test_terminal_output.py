"""What strangers wrote reaches an operator's terminal escaped: control characters in
reports are printed as escapes by `status` and `show`."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from .cmdline import run
from .helpers import (
    asend,
    base_env,
    days_ago,
    dsn,
    make_settings,
    running_daemon,
)

# --- terminal control characters from reports are printed escaped -----------------


async def test_status_and_show_escape_control_characters(tmp_path: Path) -> None:
    """A diagnostic carrying terminal escape sequences is printed escaped by `status` and
    `show` (tables and plain lines; `--json` stays JSON); a long one is cut with an
    ellipsis, and a second bounce of the same sent message says why it does not count."""
    settings = make_settings(tmp_path)
    hostile = "550 5.1.1 user unknown \x1b]0;pwned\x07\x1b[2J \x9b31m" + " padding" * 12
    async with running_daemon(settings) as d:
        rp = d.signer.return_path("77", "bob@example.net", day=days_ago(3))
        for _ in range(2):
            body = dsn("bob@example.net", return_path=rp, diagnostic=hostile)
            assert (await asend(d.port, [rp], body))["DATA"][0] == 250
        for _ in range(200):
            if (await d.store.queue_counts())["done"] == 2:
                break
            await asyncio.sleep(0.05)
    env = base_env(tmp_path)
    status = run(env, "status", "--subject", "77").stdout
    show = run(env, "show", "1").stdout
    for out in (status, show):
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", out), out
        assert "\\x1b]0;pwned\\x07" in out
    assert "user unknown" in status and " padd..." in status
    assert "yes" in status and "no (repeat)" in status
    assert "same sent message" in status
    data = json.loads(run(env, "status", "--subject", "77", "--json").stdout)
    assert "\x1b" in data["addresses"][0]["incidents"][0]["diagnostic"]
