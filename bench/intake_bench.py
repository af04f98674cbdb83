"""Benchmark: SMTP intake and end-to-end throughput of bounced against a bare aiosmtpd server.

    .venv/bin/python bench/intake_bench.py [--rounds 3] [--connections 20] [--count 6000]
                                           [--seconds 20] [--backends sqlite,postgresql]
                                           [--smtp-source] [--profile CONFIG]

Configurations, each a fresh server process (and a fresh database), each run between two runs
of the bare server, its ratio taken to their mean (the machine is noisy):

  bare     aiosmtpd on the daemon's event loop (uvloop) that accepts and discards
  intake   bounced serve, worker disabled: verify the token, store durably, 250
  e2e      bounced serve: as intake, plus the worker (classify, record, decide); its rate is
           messages / (time of the last job finished - time of the first command)

Load: bench/common.py loadgen, a separate process (asyncio on uvloop, N persistent connections,
no pipelining, corpus messages round robin, a distinct signed return path per message).
Against Postfix's C smtp-sink it does about 11,000 msg/s here, so it is not the bottleneck.
With --smtp-source, Postfix's smtp-source also drives bare and intake (one corpus file, one
return path) as a cross-check.

Printed per configuration (median over rounds): messages/s, ratio to the bare server of the
same round, p50/p99 latency from the end of DATA to the 250, peak RSS (VmHWM) and CPU time per
message of the server with its child processes (`bounced serve` runs its worker in a process of
its own: peak RSS is the sum of each process's peak; the main process's CPU is shown too), and
the bare server's CPU per message over the configuration's (a ratio less disturbed by other
load on the machine). Targets (issue 4, SQLite): intake >= 0.8x, e2e >= 0.5x.
--profile intake|e2e runs that configuration once more under py-spy (sampling the threads while
they hold the GIL, i.e. Python CPU time; $PY_SPY or py-spy on PATH) and prints where the
daemon's time goes, by stage and by function; without py-spy it falls back to cProfile.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    CLK_TCK,
    DOMAIN,
    LoadResult,
    Server,
    bare_server,
    bounced_server,
    corpus_dir,
    median,
    pg_database,
    pg_reason,
    queue_drained_at,
    run_loadgen,
    write_keys,
)

TARGETS = {"intake/sqlite": 0.8, "e2e/sqlite": 0.5}


def store_for(backend: str, folder: Path, run: str):  # type: ignore[no-untyped-def]
    """A context manager yielding a fresh store URL."""
    import contextlib

    if backend == "sqlite":
        return contextlib.nullcontext(f"sqlite:///{folder / 'bounced.db'}")
    return pg_database(f"bounced_bench_{run}")


def measure(config: str, backend: str | None, args: argparse.Namespace, folder: Path,
            run: str) -> dict[str, float]:
    """One configuration once: start the server, load it, measure, stop it."""
    folder.mkdir(parents=True)
    keys = write_keys(folder)
    if config == "bare":
        server = bare_server(folder)
        server.start()
        try:
            load = run_loadgen(server.port, connections=args.connections, count=args.count,
                               seconds=args.seconds, keys=keys)
            status = server.status()
        finally:
            server.stop()
        return summarize(load, status, load.rate)
    assert backend is not None
    with store_for(backend, folder, run) as url:
        extra = {"BOUNCED_WORKER_ENABLED": "false"} if config == "intake" else {}
        server = bounced_server(folder, url, **extra)
        spy = None
        if args.profile_out is not None and py_spy() is None:
            server = profiled(server, args.profile_out)
        server.start()
        if args.profile_out is not None and (tool := py_spy()) is not None:
            spy = subprocess.Popen(
                [tool, "record", "--pid", str(server.pid), "--gil", "--format", "raw",
                 "--rate", "250", "--output", str(args.profile_out)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        try:
            load = run_loadgen(server.port, connections=args.connections, count=args.count,
                               seconds=args.seconds, keys=keys)
            rate = load.rate
            if config == "e2e":
                last, counts = asyncio.run(
                    queue_drained_at(url, load.ok, time.monotonic() + args.seconds * 4)
                )
                if counts["done"] + counts["quarantined"] < load.ok:
                    print(f"  warning: queue not drained: {counts}")
                rate = load.ok / (last - load.first_send)
            status = server.status()
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
            server.stop()
    return summarize(load, status, rate)


def summarize(load: LoadResult, status: dict[str, int], rate: float) -> dict[str, float]:
    if load.ok == 0:
        raise RuntimeError(f"no message accepted: {load}")
    if load.failed or load.errors:
        print(f"  note: {load.failed} non-250 replies {load.replies}, {load.errors} errors")
    return {
        "rate": rate, "smtp_rate": load.rate, "ok": load.ok, "p50": load.p50_ms,
        "p99": load.p99_ms, "rss_mb": status.get("VmHWM", 0) / 1024,
        "cpu_ms_per_msg": 1000 * status.get("cpu_ticks", 0) / CLK_TCK / max(load.ok, 1),
        "processes": status.get("processes", 1),
        "cpu_main_ms_per_msg": 1000 * status.get("cpu_ticks_main", 0) / CLK_TCK / max(load.ok, 1),
    }


def profiled(server: Server, out: Path) -> Server:
    argv = [sys.executable, "-m", "cProfile", "-o", str(out), *server.argv[1:]]
    return Server(argv, server.env, server.port, server.log_path)


def smtp_source_rate(port: int, args: argparse.Namespace, folder: Path, rp: str) -> float:
    """Messages/s that Postfix's smtp-source achieves (one corpus file, one return path)."""
    sample = sorted(corpus_dir().glob("*.eml"), key=lambda p: p.stat().st_size)
    message = sample[len(sample) // 2]
    tool = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    start = time.perf_counter()
    subprocess.run(
        [tool, "-s", str(args.connections), "-m", str(args.count), "-d", "-f", "", "-t", rp,
         "-F", str(message), "-M", "loadgen.test", f"127.0.0.1:{port}"],
        check=True, timeout=args.seconds * 3, capture_output=True,
    )
    return args.count / (time.perf_counter() - start)


def smtp_source_round(args: argparse.Namespace, folder: Path) -> dict[str, float]:
    from bounced.verp import Keyring, Signer

    folder.mkdir(parents=True)
    keys = write_keys(folder)
    rp = Signer(Keyring.load(keys), domain=DOMAIN).return_path(
        "4711", "alice@example.net", day=dt.datetime.now(dt.UTC).date())
    out = {}
    for config in ("bare", "intake"):
        sub = folder / config
        sub.mkdir()
        if config == "bare":
            server = bare_server(sub)
        else:
            server = bounced_server(sub, f"sqlite:///{sub / 'bounced.db'}",
                                    BOUNCED_WORKER_ENABLED="false")
        server.start()
        try:
            out[config] = smtp_source_rate(server.port, args, sub, rp)
        finally:
            server.stop()
    return out


def py_spy() -> str | None:
    return os.environ.get("PY_SPY") or shutil.which("py-spy")


# (stage, frames that mark it): the first stage whose marker is on a sample's stack gets it.
STAGES = (
    ("worker: classify", ("bounced/classify/",)),
    ("worker: store (claim, finish)", ("Worker.run_batch", "Worker.process")),
    ("smtp RCPT hook (token check)", ("BounceHandler.handle_RCPT",)),
    ("smtp DATA hook: intake + store", ("Intake.", "add_messages")),
    ("smtp DATA hook: other (logging)", ("BounceHandler.handle_DATA",)),
    ("aiosqlite thread (SQLite calls)", ("_connection_worker_thread",)),
    ("aiosmtpd protocol (parsing, replies)", ("SMTP._handle_client", "SMTP.smtp_")),
    ("asyncio streams / event loop", ("asyncio/", "uvloop")),
)


def print_py_spy(path: Path, top: int = 25) -> None:
    import collections

    own: collections.Counter[str] = collections.Counter()
    stages: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        frames, count = stack.split(";"), int(n)
        total += count
        own[frames[-1]] += count
        stage = next((name for name, marks in STAGES
                      if any(m in f for f in frames for m in marks)), "other")
        stages[stage] += count
    print(f"\npy-spy, samples while holding the GIL (Python CPU time of all threads): {total}")
    print("by stage:")
    for name, n in stages.most_common():
        print(f"  {100 * n / total:5.1f}%  {name}")
    print("by function (own time):")
    for frame, n in own.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {short(frame)}")


def print_profile(path: Path, top: int = 25) -> None:
    import pstats

    stats = pstats.Stats(str(path))
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"\ncProfile of the daemon: {total:.2f} s of CPU in Python functions (own time);")
    print("top functions by own time (share of total), then by cumulative time:")
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # type: ignore[attr-defined]
    for (file, line, name), (_, _, tt, ct, _) in rows[:top]:
        print(f"  {100 * tt / total:5.1f}%  own {tt:6.2f}s  cum {ct:6.2f}s  "
              f"{short(file)}:{line}:{name}")
    print("by cumulative time (bounced code only):")
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][3], reverse=True)  # type: ignore[attr-defined]
    shown = 0
    for (file, line, name), (_, _, _tt, ct, _) in rows:
        if "/bounced/" in file and shown < top:
            print(f"  {100 * ct / total:5.1f}%  cum {ct:6.2f}s  {short(file)}:{line}:{name}")
            shown += 1


def short(file: str) -> str:
    # A profile's file names relative to where they come from: an installed package, this
    # checkout, or the running interpreter's standard library.
    checkout = str(Path(__file__).resolve().parent.parent) + "/"
    for marker in ("/site-packages/", "/dist-packages/", checkout,
                   sysconfig.get_path("stdlib") + "/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, default=20)
    p.add_argument("--count", type=int, default=6000, help="messages per run (bound)")
    p.add_argument("--seconds", type=float, default=20.0, help="seconds per run (bound)")
    p.add_argument("--backends", default="sqlite,postgresql")
    p.add_argument("--smtp-source", action="store_true", help="cross-check with smtp-source")
    p.add_argument("--profile", choices=("intake", "e2e"), help="profile one configuration")
    p.add_argument("--profile-backend", default="sqlite")
    args = p.parse_args()
    args.profile_out = None

    backends = [b for b in args.backends.split(",") if b]
    if "postgresql" in backends and (reason := pg_reason()) is not None:
        print(f"PostgreSQL skipped: {reason}")
        backends.remove("postgresql")
    configs = [("bare", None)] + [(c, b) for b in backends for c in ("intake", "e2e")]
    tmp = Path(tempfile.mkdtemp(prefix="bounced-intake-bench-"))
    fs = subprocess.run(["df", "-T", str(tmp)], capture_output=True, text=True,
                        check=False).stdout
    print(f"intake bench {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, Python "
          f"{platform.python_version()}, {len(list(corpus_dir().glob('*.eml')))} corpus messages, "
          f"{args.connections} connections, {args.count} messages or {args.seconds:g} s per run, "
          f"{args.rounds} rounds; load generator: bench/common.py loadgen (own process); "
          f"files in {tmp} ({fs.splitlines()[-1].split()[1]})")
    results: dict[str, list[dict[str, float]]] = {}
    ratios: dict[str, list[float]] = {}
    # Each configuration runs between two bare runs; its ratio is to their mean, so a change
    # in the machine's load between runs moves both sides.
    seq = 0
    for r in range(args.rounds):
        before = measure("bare", None, args, tmp / f"r{r}-bare-{seq}", f"{r}")
        results.setdefault("bare", []).append(before)
        ratios.setdefault("bare", []).append(1.0)
        print(f"  round {r + 1} {'bare':20s} {before['rate']:7.0f} msg/s", flush=True)
        for config, backend in configs[1:]:
            seq += 1
            name = f"{config}/{backend}"
            m = measure(config, backend, args, tmp / f"r{r}-{name.replace('/', '-')}", f"{r}")
            after = measure("bare", None, args, tmp / f"r{r}-bare-{seq}", f"{r}")
            results.setdefault(name, []).append(m)
            results["bare"].append(after)
            base = (before["rate"] + after["rate"]) / 2
            ratios.setdefault(name, []).append(m["rate"] / base)
            print(f"  round {r + 1} {name:20s} {m['rate']:7.0f} msg/s  x{m['rate'] / base:.2f}  "
                  f"p50 {m['p50']:.1f} ms  p99 {m['p99']:.1f} ms  peak RSS {m['rss_mb']:.0f} MB  "
                  f"CPU {m['cpu_ms_per_msg']:.2f} ms/msg (main process "
                  f"{m['cpu_main_ms_per_msg']:.2f}, {m['processes']:.0f} processes)  "
                  f"(bare after: {after['rate']:.0f})",
                  flush=True)
            before = after

    print(f"\n{'configuration':20s} {'msg/s':>7s} {'x bare':>7s} {'target':>7s} "
          f"{'p50 ms':>7s} {'p99 ms':>7s} {'RSS MB':>7s} {'CPU ms/msg':>10s} {'x CPU':>6s}")
    bare_cpu = median([m["cpu_ms_per_msg"] for m in results["bare"]])
    for name, runs in results.items():
        target = TARGETS.get(name)
        ratio = median(ratios[name])
        verdict = "" if target is None else f">={target}" + (" ok" if ratio >= target else " MISS")
        print(f"{name:20s} {median([m['rate'] for m in runs]):7.0f} {ratio:7.2f} {verdict:>7s} "
              f"{median([m['p50'] for m in runs]):7.1f} {median([m['p99'] for m in runs]):7.1f} "
              f"{max(m['rss_mb'] for m in runs):7.0f} "
              f"{median([m['cpu_ms_per_msg'] for m in runs]):10.2f} "
              f"{bare_cpu / median([m['cpu_ms_per_msg'] for m in runs]):6.2f}")
    print("x CPU: the bare server's CPU time per message over this one's, the ratio one core\n"
          "would give if both were CPU-bound; less disturbed by the machine's other load.")
    for name, runs in results.items():
        if name.startswith("e2e"):
            print(f"{name}: SMTP phase alone {median([m['smtp_rate'] for m in runs]):.0f} msg/s "
                  "(intake and worker share the machine's cores with the load generator)")

    if args.smtp_source:
        if shutil.which("smtp-source") or Path("/usr/sbin/smtp-source").exists():
            rates = [smtp_source_round(args, tmp / f"smtp-source-{r}") for r in range(args.rounds)]
            bare = median([x["bare"] for x in rates])
            intake = median([x["intake"] for x in rates])
            print(f"\nsmtp-source cross-check (one return path, one corpus file): bare {bare:.0f} "
                  f"msg/s, intake/sqlite {intake:.0f} msg/s, "
                  f"x{median([x['intake'] / x['bare'] for x in rates]):.2f}")
        else:
            print("\nsmtp-source not installed (bash .ci/install-mta): cross-check skipped")

    if args.profile:
        out = tmp / "daemon.prof"
        args.profile_out = out
        m = measure(args.profile, args.profile_backend, args, tmp / "profile", "profile")
        print(f"\nprofiled run {args.profile}/{args.profile_backend}: {m['rate']:.0f} msg/s "
              "(slower while profiled)")
        if py_spy() is not None:
            print_py_spy(out)
        else:
            print_profile(out)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
