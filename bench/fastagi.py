"""Part 5 of bench/run.sh: the FastAGI server (`bankid-ivr fastagi`, release build) holding its
`--max-calls` worth of concurrent calls against bankid-sim over mutual TLS.

N fake Asterisk calls (asyncio, in this process) each key in their own personal number, whose
order the simulator keeps pending (userCallConfirm) for HOLD seconds before it completes, and
answer every STREAM FILE / SET VARIABLE at once. While all N calls are live the server's threads,
RSS and CPU are read from /proc/PID (a window of WINDOW seconds after a start phase); then one
connection beyond the cap is opened (it must be closed at once) and every call must finish with
BANKID_STATUS=complete. Prints a markdown table; asserts nothing about speed.

usage: python3 bench/fastagi.py [--quick]
"""

import asyncio
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, os.environ.get("BANKID_BENCH_TARGET", "target/release"))
QUICK = "--quick" in sys.argv
CALLS, HOLD_S, START_S, WINDOW_S = (32, 12, 3, 5) if QUICK else (256, 40, 6, 20)
TICK = os.sysconf("SC_CLK_TCK")


def luhn(nine):
    s = 0
    for i, c in enumerate(nine):
        p = int(c) * (2 if i % 2 == 0 else 1)
        s += p // 10 + p % 10
    return (10 - s % 10) % 10


def pnrs(n):
    out, t = [], time.mktime((1950, 1, 1, 12, 0, 0, 0, 0, -1))
    for day in range(n):
        y, m, d = time.localtime(t + day * 86400)[:3]
        base = f"{y:04d}{m:02d}{d:02d}234"
        out.append(base + str(luhn(base[2:])))
    return out


def proc_status(pid):
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / TICK  # utime + stime


async def agi_call(addr, pnr, states):
    # Every call has a caller ID of its own: the anti-vishing limit allows one caller ID only
    # max_orders_per_caller_per_hour (10) orders, and this measures calls, not that limit.
    host, port = addr.rsplit(":", 1)
    r, w = await asyncio.open_connection(host, int(port))
    w.write(("agi_network: yes\nagi_network_script: bankid-identify\nagi_request: agi://"
             f"{addr}/bankid-identify\nagi_channel: SIP/bench-{pnr}\nagi_callerid: 4670{pnr[-7:]}\n\n").encode())
    status = None
    while True:
        line = await r.readline()
        if not line:
            break
        cmd = line.decode().strip()
        if cmd.startswith("GET DATA"):
            w.write(f"200 result={pnr}\n".encode())
        elif cmd.startswith("SET VARIABLE BANKID_STATUS"):
            status = cmd.split('"')[1]
            w.write(b"200 result=1\n")
        elif cmd.startswith("STREAM FILE bankid-open-app"):
            states["started"] += 1
            w.write(b"200 result=0 endpos=8000\n")
        else:
            w.write(b"200 result=0\n")
        await w.drain()
    w.close()
    return status


def one_beyond_the_cap(addr):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    s.sendall(b"agi_network: yes\n\n")
    t = time.monotonic()
    try:
        data = s.recv(100)
    except ConnectionResetError:
        data = b""
    took = time.monotonic() - t
    s.close()
    return data == b"" and took < 1.0, took


async def main_async(addr, server_pid):
    numbers = pnrs(CALLS)
    states = {"started": 0}
    idle_threads, idle_rss, _ = proc_status(server_pid)
    tasks = [asyncio.create_task(agi_call(addr, n, states)) for n in numbers]
    await asyncio.sleep(START_S)
    started = states["started"]
    threads, rss, _ = proc_status(server_pid)
    c0, t0 = cpu_s(server_pid), time.monotonic()
    await asyncio.sleep(WINDOW_S)
    c1, t1 = cpu_s(server_pid), time.monotonic()
    threads_end, rss_end, hwm = proc_status(server_pid)
    refused, refused_s = await asyncio.get_running_loop().run_in_executor(None, one_beyond_the_cap, addr)
    results = await asyncio.gather(*tasks)
    complete = sum(1 for r in results if r == "complete")
    return {
        "calls": CALLS, "started": started, "idle_threads": idle_threads, "idle_rss": idle_rss,
        "threads": max(threads, threads_end), "rss": max(rss, rss_end), "hwm": hwm,
        "cpu_pct": 100 * (c1 - c0) / (t1 - t0), "cpu_s": c1 - c0, "window": t1 - t0,
        "refused": refused, "refused_ms": refused_s * 1000, "complete": complete,
    }


def main():
    certs = tempfile.mkdtemp(prefix="bankid-bench-agi-")
    procs = []
    try:
        sim = subprocess.Popen([os.path.join(REL, "bankid-sim"), "--certs", certs],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(sim)
        url = sim.stdout.readline().strip().split(" ", 1)[1]
        ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
        ctx.load_cert_chain(os.path.join(certs, "client.pem"), os.path.join(certs, "client.key"))
        control = url.split("/rp/")[0] + "/sim/"
        for n in pnrs(CALLS):
            body = {"personalNumber": n, "steps": [{"hintCode": "userCallConfirm", "ms": HOLD_S * 1000}],
                    "outcome": "complete"}
            req = urllib.request.Request(control + "scenario", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, context=ctx, timeout=30).read()
        cfg = os.path.join(certs, "bankid.toml")
        with open(cfg, "w") as f:
            f.write(f'url = "{url}"\nca_file = "ca.pem"\ncert_file = "client.pem"\nkey_file = "client.key"\n'
                    "poll_interval_ms = 2000\n"
                    # The run's records beside its certificates, never in a real state directory.
                    'audit_database = "audit.db"\naudit_spool_dir = "audit-spool"\naudit_key_file = "audit.key"\n')
        server = subprocess.Popen([os.path.join(REL, "bankid-ivr"), "fastagi", "--listen", "127.0.0.1:0",
                                   "--config", cfg, "--max-calls", str(CALLS)],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                  env={k: v for k, v in os.environ.items() if not k.startswith("BANKID_")})
        procs.append(server)
        addr = server.stdout.readline().strip().removeprefix("listening agi://").removesuffix("/bankid-identify")
        time.sleep(0.5)
        r = asyncio.run(main_async(addr, server.pid))
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait()
        shutil.rmtree(certs, ignore_errors=True)
    print("| calls held | reached BankID | threads idle → with calls | RSS idle → with calls | peak RSS "
          "| CPU with calls (collect every 2 s, 50 ms watch per call) | one more connection | all complete |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {r['calls']} | {r['started']} | {r['idle_threads']} → {r['threads']} "
          f"| {r['idle_rss']:.1f} → {r['rss']:.1f} MiB | {r['hwm']:.1f} MiB "
          f"| {r['cpu_pct']:.1f} % of one core ({r['cpu_s']:.2f} s in {r['window']:.0f} s) "
          f"| {'closed at once' if r['refused'] else 'NOT closed'} ({r['refused_ms']:.0f} ms) "
          f"| {r['complete']} of {r['calls']} |")
    if r["started"] != CALLS or r["complete"] != CALLS or not r["refused"]:
        print("bench fastagi: not every call ran as expected", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
