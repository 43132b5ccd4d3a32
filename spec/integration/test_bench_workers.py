#!/usr/bin/python3
"""The workers rows of scripts/bench (wfan1, wfan2, widle; issue 12), tiny:
examples/hub with workers = 1 and with workers = 2 (a supervisor and two
worker processes), driven by moonwire-bench with --server-pid, which
measures the server as all its processes. Asserts that nothing is lost and
that the numbers the rows are made of are produced and add up -- the
server's processes, which of them serves each connection, their CPU time
over the measured window, the write syscalls, PSS before and after each
step of idle connections -- never speed.

Which worker accepts a connection is the kernel's choice: the fan-out runs
open one connection at a time (--concurrency 1), which in practice spreads
them over both workers, and the split is printed, not asserted.

    /usr/bin/python3 spec/integration/test_bench_workers.py --binary BUILD/moonwire \
        --root REPO [--bench BUILD/moonwire-bench]

Without --bench, moonwire-bench is looked for next to --binary.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402
import test_bench_smoke as B  # noqa: E402  (run_bench and its checks)

S = H.Suite("moonwire bench: the workers rows (examples/hub, workers = 1 and 2)")
SUBS = 20
RATE = 200
CONNS = 40


def start_hub(ctx, key, workers):
    """examples/hub with `workers`; returns once every worker has answered
    /health with its hub link up (workers = 1: once the server answers)."""
    env = {"MOONWIRE_WORKERS": str(workers)}  # explicit: MW_TEST_WORKERS must not change it
    srv = ctx.start(key, ctx.example("hub"), env=env)
    seen = set()

    def ready():
        h = srv.health()
        if workers == 1:
            return True
        if h.get("worker") and h.get("cluster", {}).get("up") is True:
            seen.add(h["worker"])
        return len(seen) == workers
    H.poll(ready, timeout=15, what="every worker to answer /health")
    return srv


@S.setup
def setup(ctx):
    path = B.BENCH["path"] or os.path.join(os.path.dirname(ctx.binary), "moonwire-bench")
    B.BENCH["path"] = os.path.abspath(path)
    if not os.access(B.BENCH["path"], os.X_OK):
        raise H.Failure("moonwire-bench not found at %s (build it, or pass --bench)" %
                        B.BENCH["path"])
    start_hub(ctx, "w1", 1)
    start_hub(ctx, "w2", 2)


def processes(res, n, pid):
    """The server_processes array: n of them, the first the server's pid."""
    ps = res.get("server_processes")
    check(isinstance(ps, list), "server_processes is not a list: %r" % (ps,))
    eq(len(ps), n, "server processes (%r)" % ps)
    eq(B.num(res, "server_process_count"), n, "server_process_count")
    eq(ps[0].get("pid"), pid, "the first process is --server-pid")
    check(len({p.get("pid") for p in ps}) == n, "a process is listed twice: %r" % ps)
    return ps


def split(ps, kind):
    text = " / ".join("pid %s: %s" % (p["pid"], p[kind]) for p in ps)
    print("     %s per process: %s" % (kind, text), flush=True)


def fanout(ctx, srv, nprocs):
    res = B.run_bench(ctx, "fanout", "--url", srv.url("/"), "--subscribers", SUBS,
                      "--publishers", 1, "--rate", RATE, "--size", 64, "--duration", 1,
                      "--concurrency", 1, "--stall-timeout", 10, "--drain-timeout", 10,
                      "--server-pid", srv.proc.pid)
    B.no_errors(res)
    B.common_fields(res)
    messages = B.num(res, "published")
    check(messages > 0, "nothing was published: %r" % res)
    eq(B.num(res, "received"), messages * SUBS, "deliveries (= messages x subscribers)")
    eq(B.num(res, "lost"), 0, "lost deliveries")
    eq(B.num(res, "duplicates"), 0, "duplicate deliveries")
    eq(B.num(res, "other_messages"), 0, "unexpected messages to subscribers")
    ps = processes(res, nprocs, srv.proc.pid)
    split(ps, "subscribers")
    eq(sum(p["subscribers"] for p in ps), SUBS, "subscribers served by the processes")
    eq(sum(p["publishers"] for p in ps), 1, "publishers served by the processes")
    eq(B.num(res, "subscribers_unmatched"), 0, "subscribers served by none of them")
    eq(B.num(res, "publishers_unmatched"), 0, "publishers served by none of them")
    eq(B.num(res, "server_processes_changed"), 0, "processes changed during the window")
    # CPU over the window: the per-process figures add up, and the headline
    # is the window's deliveries over their sum.
    cpu = B.num(res, "server_cpu_s")
    check(cpu >= 0, "server_cpu_s is negative")
    total = sum(p["cpu_user_s"] + p["cpu_sys_s"] for p in ps)
    check(abs(total - cpu) <= 0.01 * len(ps) + 1e-9,
          "per-process CPU %.2f s does not add up to server_cpu_s %.2f s" % (total, cpu))
    per = B.num(res, "deliveries_per_server_cpu_s")
    deliveries = B.num(res, "deliveries")
    check(deliveries > 0, "no delivery in the window")
    if cpu > 0:
        check(abs(per * cpu - deliveries) <= 0.01 * deliveries + 1,
              "deliveries_per_server_cpu_s %r x server_cpu_s %r != deliveries %r" %
              (per, cpu, deliveries))
    else:
        eq(per, 0, "deliveries_per_server_cpu_s without CPU time")
    # Every delivery in the window was written by a process of the server.
    writes = B.num(res, "server_write_syscalls")
    check(0 < writes, "no write syscall counted in the window")
    eq(sum(p["write_syscalls"] for p in ps), writes, "write syscalls per process")
    return ps


@S.case("wfan, workers = 1: one process serves every connection, nothing lost", timeout=60)
def test_wfan_workers_1(ctx):
    srv = ctx.servers["w1"]
    ps = fanout(ctx, srv, 1)
    eq(ps[0]["subscribers"], SUBS, "subscribers of the one process")


@S.case("wfan, workers = 2: the supervisor and two workers measured, nothing lost",
        timeout=60)
def test_wfan_workers_2(ctx):
    srv = ctx.servers["w2"]
    ps = fanout(ctx, srv, 3)
    eq((ps[0]["subscribers"], ps[0]["publishers"]), (0, 0),
       "connections served by the supervisor")
    check(ps[0]["name"] == "moonwire", "the supervisor is %r" % ps[0]["name"])


def conns(ctx, srv, nprocs):
    res = B.run_bench(ctx, "conns", "--url", srv.url("/"), "--connections", CONNS,
                      "--duration", 0.2, "--settle", 0.2, "--steps", 2,
                      "--server-pid", srv.proc.pid)
    B.no_errors(res)
    eq(B.num(res, "connections_held"), CONNS, "connections still open at the end")
    ps = processes(res, nprocs, srv.proc.pid)
    split(ps, "connections")
    eq(sum(p["connections"] for p in ps), CONNS, "connections served by the processes")
    eq(B.num(res, "connections_unmatched"), 0, "connections served by none of them")
    before, after = B.num(res, "server_pss_before_bytes"), B.num(res, "server_pss_after_bytes")
    check(0 < before and 0 < after, "PSS not read: %r -> %r" % (before, after))
    for p in ps:
        check(p["pss_before"] > 0 and p["pss_after"] > 0 and p["rss_after"] > 0,
              "memory of pid %s not read: %r" % (p["pid"], p))
    eq(sum(p["pss_after"] for p in ps), after, "PSS per process adds up")
    B.num(res, "server_pss_per_conn_bytes")
    B.num(res, "server_pss_marginal_per_conn_bytes")
    steps = res.get("server_mem_steps")
    check(isinstance(steps, list) and len(steps) == 2, "server_mem_steps: %r" % (steps,))
    eq([s["connections"] for s in steps], [CONNS // 2, CONNS], "connections at each step")
    eq(steps[-1]["pss"], after, "the last step's PSS is the one after")
    return ps


@S.case("widle, workers = 1: PSS before and after two steps of idle connections",
        timeout=60)
def test_widle_workers_1(ctx):
    conns(ctx, ctx.servers["w1"], 1)


@S.case("widle, workers = 2: PSS summed over the supervisor and the workers", timeout=60)
def test_widle_workers_2(ctx):
    ps = conns(ctx, ctx.servers["w2"], 3)
    eq(ps[0]["connections"], 0, "connections served by the supervisor")


@S.case("--server-pid of no process: a bad option, nothing run")
def test_server_pid_gone(ctx):
    # A pid that is certainly free: a child that has exited and was reaped.
    p = subprocess.Popen(["true"])
    p.wait()
    r = subprocess.run([B.BENCH["path"], "fanout", "--url", ctx.servers["w1"].url("/"),
                        "--server-pid", str(p.pid)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10)
    eq(r.returncode, 2, "exit status")
    check(b"--server-pid" in r.stderr, "stderr: %r" % r.stderr[:300])


@S.case("both servers are healthy after the runs, with no clients left")
def test_servers_healthy(ctx):
    for key in ("w1", "w2"):
        srv = ctx.servers[key]
        check(srv.alive(), "%s exited: %s" % (key, H.short(srv.log(), 600)))
        H.poll(lambda: srv.health().get("connections") == 0, timeout=10,
               what="%s's /health to show no connections" % key)


if __name__ == "__main__":
    bench_path, rest = B.pop_bench_arg(sys.argv[1:])
    B.BENCH["path"] = bench_path
    sys.exit(S.main(rest))
