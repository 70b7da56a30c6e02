"""Benchmarks 2-4 of issue #6 (bench/run.sh runs part 1 and then this). Every part starts its own
bankid-sim (the release binary) on 127.0.0.1 with mutual TLS, so the figures of one part do not
leak into another. Prints markdown tables; asserts nothing about speed.

usage: python3 bench/bench.py [--quick]
"""

import json
import os
import random
import resource
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, os.environ.get("BANKID_BENCH_TARGET", "target/release"))
SIM = os.path.join(REL, "bankid-sim")
LIB = os.path.join(REL, "libbankid.so")
ORDERS = os.path.join(REL, "..", "bench", "orders")
PEERS = os.path.join(ROOT, "bench/peers")
VENV_PY = os.path.join(ROOT, ".venv/bin/python")
QUICK = "--quick" in sys.argv
CERTS = tempfile.mkdtemp(prefix="bankid-bench-")
FAILED = []  # what did not run or did not finish; the run exits non-zero (never for a timing)


def pct(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    return v[min(len(v) - 1, int(len(v) * p / 100))]


class Sim:
    """A bankid-sim process and its control API."""

    def __init__(self, *args):
        self.log = open(os.path.join(CERTS, "sim.log"), "a")
        self.proc = subprocess.Popen([SIM, "--certs", CERTS, *args], stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening https://127.0.0.1:"):
            raise SystemExit(f"bankid-sim did not start: {line!r}")
        self.url = line.split(" ", 1)[1]
        self.control = self.url.split("/rp/")[0] + "/sim/"
        ctx = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.pem"))
        ctx.load_cert_chain(os.path.join(CERTS, "client.pem"), os.path.join(CERTS, "client.key"))
        self.ctx = ctx

    def get(self, what):
        with urllib.request.urlopen(self.control + what, context=self.ctx, timeout=60) as r:
            return json.load(r)

    def post(self, what, body):
        req = urllib.request.Request(self.control + what, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=self.ctx, timeout=60) as r:
            return r.read()

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.log.close()


def config(sim, path, **extra):
    lines = [f'url = "{sim.url}"', 'ca_file = "ca.pem"', 'cert_file = "client.pem"', 'key_file = "client.key"']
    # The run's records beside its certificates (relative to this file), never in a real state directory.
    lines += ['audit_database = "audit.db"', 'audit_spool_dir = "audit-spool"', 'audit_key_file = "audit.key"']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def kv(line):
    return dict(p.split("=", 1) for p in line.split() if "=" in p)


def luhn(nine):
    s = 0
    for i, c in enumerate(nine):
        p = int(c) * (2 if i % 2 == 0 else 1)
        s += p // 10 + p % 10
    return (10 - s % 10) % 10


def pnrs(n, first_day=0):
    """n valid personal numbers with distinct birth dates (so masked numbers are unique)."""
    out = []
    day = 0
    t = time.mktime((1940, 1, 1, 12, 0, 0, 0, 0, -1))
    while len(out) < n:
        y, m, d = time.localtime(t + (first_day + day) * 86400)[:3]
        day += 1
        base = f"{y:04d}{m:02d}{d:02d}123"
        out.append(base + str(luhn(base[2:])))
    return out


def write_pnrs(numbers):
    path = os.path.join(CERTS, f"pnrs-{len(numbers)}-{random.random():.6f}.txt")
    with open(path, "w") as f:
        f.write("\n".join(numbers) + "\n")
    return path


# ---------------------------------------------------------------- 2. concurrent orders
def concurrent_orders():
    sizes = [200] if QUICK else [1000, 10000]
    window, warmup = (6, 3) if QUICK else (20, 4)
    print("\n## 2. Concurrent pending orders in one process (libbankid.so from C, collect every 2 s)\n")
    print(f"All orders are started at once; the first {warmup} s (every phone/auth and the first collects, with "
          f"their TLS handshakes) are the start phase, then a {window} s window of steady collecting is measured. "
          "The simulator keeps every order pending. Threads and RSS are the whole C process; CPU is "
          "user + system of the whole process (getrusage).\n")
    print("| link | orders | threads | RSS idle → with orders | peak RSS | CPU start phase | TLS handshakes start phase "
          "| CPU per order per minute (window) | CPU per collect | TLS handshakes in window | collects in window "
          "| collect interval median | p99 | max |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for latency in (0, 30):
        for n in sizes:
            sim = Sim("--speed", "10", "--latency-ms", str(latency))
            cfg = config(sim, os.path.join(CERTS, "concurrent.toml"), poll_interval_ms=2000, max_orders=n + 100)
            hs0 = sim.get("stats")["handshakes"]
            proc = subprocess.Popen([ORDERS, LIB, cfg, "concurrent", str(n), str(window), str(warmup)],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            marker = proc.stdout.readline()
            if marker.strip() != "window=start":
                raise SystemExit(f"orders concurrent {n}: no window marker ({marker!r})")
            # Each read of /sim/stats is one more connection: count it out.
            hs1 = sim.get("stats")["handshakes"] - 1
            r = kv(proc.stdout.readline())
            hs2 = sim.get("stats")["handshakes"] - 2
            orders = sim.get("orders")["orders"]
            proc.stdin.close()
            if proc.wait() != 0 or "orders" not in r:
                raise SystemExit(f"orders concurrent {n} failed")
            sim.stop()
            w0, w1 = int(r["window_start_ms"]), int(r["window_end_ms"])
            intervals, in_window = [], 0
            for o in orders:
                c = o["collectsMs"]
                intervals += [b - a for a, b in zip(c, c[1:]) if w0 <= o["createdUnixMs"] + b <= w1]
                in_window += sum(1 for x in c if w0 <= o["createdUnixMs"] + x <= w1)
            if not intervals:
                raise SystemExit(f"orders concurrent {n}: no collects in the window")
            cpu_w = float(r["cpu_window_s"])
            per_order_min = cpu_w / n * (60 / window) * 1000
            per_collect = cpu_w / max(in_window, 1) * 1e6
            link = "loopback" if latency == 0 else f"+{latency} ms per response"
            print(f"| {link} | {n} | {r['threads']} | {int(r['rss_before_kb'])/1024:.1f} → {int(r['rss_kb'])/1024:.1f} MiB | "
                  f"{int(r['hwm_kb'])/1024:.1f} MiB | {float(r['cpu_start_s']):.2f} s | {hs1 - hs0} | {per_order_min:.2f} ms | "
                  f"{per_collect:.0f} µs | {hs2 - hs1} | {in_window} | {statistics.median(intervals)/1000:.3f} s | "
                  f"{pct(intervals, 99)/1000:.3f} s | {max(intervals)/1000:.3f} s |")
            if int(r["pending"]) != n:
                print(f"\nnote: only {r['pending']} of {n} orders were still pending at the end of the window")
            sys.stdout.flush()


# ---------------------------------------------------------------- 3. cost per identification
def rusage_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def ensure_npm_peer():
    if not shutil.which("node") or not shutil.which("npm"):
        FAILED.append("node/npm are not installed (Debian: apt-get install nodejs npm; scripts/setup.sh does)")
        return False
    if os.path.isdir(os.path.join(PEERS, "node_modules", "bankid")):
        return True
    # Exactly the versions in bench/peers/package-lock.json (bankid 3.2.1).
    subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund", "--prefix", PEERS],
                   check=True, stdout=subprocess.DEVNULL)
    return True


def ensure_pybankid():
    if os.path.exists(VENV_PY) and subprocess.run([VENV_PY, "-c", "import bankid"], capture_output=True).returncode == 0:
        return True
    if not os.path.exists(VENV_PY):
        subprocess.run([sys.executable, "-m", "venv", os.path.join(ROOT, ".venv")], check=True)
    subprocess.run([VENV_PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r",
                    os.path.join(ROOT, "scripts/requirements-peers.txt")], check=True)
    return True


def cost_per_identification():
    # BankID's cadence (a collect every 2 s) and a caller who opens the app after 4 s and enters
    # the security code 6 s later: about 6 collects per identification, as on a real call.
    # (A faster cadence makes the npm package's setInterval polling overlap its own requests.)
    n, conc, poll = (20, 10, 2.0) if QUICK else (200, 100, 2.0)
    app_ms, code_ms = (2000, 2000) if QUICK else (4000, 6000)
    numbers = pnrs(n)
    pnr_file = write_pnrs(numbers)
    sim = Sim("--speed", "1")
    for p in numbers:
        sim.post("scenario", {"personalNumber": p, "outcome": "complete",
                              "steps": [{"hintCode": "outstandingTransaction", "ms": app_ms},
                                        {"hintCode": "userSign", "ms": code_ms}]})
    cfg = config(sim, os.path.join(CERTS, "cost.toml"), poll_interval_ms=int(poll * 1000))
    runs = []

    def measure(name, argv, concurrency_inside=True):
        hs0 = sim.get("stats")
        cpu0, t0 = rusage_children(), time.monotonic()
        if concurrency_inside:
            res = subprocess.run(argv, capture_output=True, text=True)
            ok = res.returncode == 0
            err = res.stderr.strip().splitlines()[-1:] if not ok else []
        else:
            # curl: CONCURRENCY identifications at a time, each its own bash + curl processes.
            procs, ok, err, queue = [], True, [], list(numbers)
            while queue or procs:
                while queue and len(procs) < conc:
                    procs.append(subprocess.Popen(argv + [queue.pop(0), sim.url, CERTS, str(poll)], stderr=subprocess.DEVNULL))
                time.sleep(0.005)
                for pr in [pr for pr in procs if pr.poll() is not None]:
                    ok &= pr.returncode == 0
                    procs.remove(pr)
        wall, cpu = time.monotonic() - t0, rusage_children() - cpu0
        hs1 = sim.get("stats")
        # The second read of /sim/stats is itself one connection and one request: count it out.
        runs.append((name, ok, cpu, wall, hs1["handshakes"] - hs0["handshakes"] - 1, hs1["requests"] - hs0["requests"] - 1, err))

    measure("curl per request (bash + curl)", ["bash", os.path.join(PEERS, "curl_identify.sh")], concurrency_inside=False)
    if ensure_pybankid():
        measure("pybankid 1.5.0 (Python)", [VENV_PY, os.path.join(PEERS, "pybankid_identify.py"), sim.url, CERTS, pnr_file, str(conc), str(poll)])
    if ensure_npm_peer():
        measure("bankid 3.2.1 (npm, Node.js)", ["node", os.path.join(PEERS, "npm_identify.js"), sim.url, CERTS, pnr_file, str(conc), str(poll)])
    measure("libbankid.so (this library, from C)", [ORDERS, LIB, cfg, "cost", pnr_file, str(conc)])
    sim.stop()

    print(f"\n## 3. Cost per identification: {n} callers, {conc} at a time, collect every {poll:g} s, "
          f"each caller opens the app after {app_ms / 1000:g} s and enters the code {code_ms / 1000:g} s later\n")
    print("CPU is user + system time of the client processes (and their children), from the kernel's accounting.\n")
    print("| client | all complete | CPU total | CPU per identification | CPU vs this library | wall for all | TLS handshakes | requests |")
    print("|---|---|---|---|---|---|---|---|")
    ours = runs[-1][2] / n
    for name, ok, cpu, wall, hs, reqs, err in runs:
        per = cpu / n
        print(f"| {name} | {'yes' if ok else 'NO'} | {cpu:.2f} s | {per*1000:.2f} ms | {per/ours:.1f}× | {wall:.2f} s | {hs} | {reqs} |")
        if err:
            print(f"\nnote: {name}: {err[0]}")
        if not ok:
            FAILED.append(f"{name}: not every identification completed")
    sys.stdout.flush()


# ---------------------------------------------------------------- 4. detection latency
def detection_latency():
    m = 30 if QUICK else 200
    numbers = pnrs(m, first_day=20000)
    sim = Sim("--speed", "1")
    rng = random.Random(7)
    for p in numbers:
        total = rng.randint(3000, 7000)
        a = rng.randint(500, total - 500)
        sim.post("scenario", {"personalNumber": p, "outcome": "complete",
                              "steps": [{"hintCode": "outstandingTransaction", "ms": a},
                                        {"hintCode": "userSign", "ms": total - a}]})
    cfg = config(sim, os.path.join(CERTS, "detect.toml"), poll_interval_ms=2000)
    out = subprocess.run([ORDERS, LIB, cfg, "detect", write_pnrs(numbers)], capture_output=True, text=True, check=True)
    seen = {}
    for line in out.stdout.splitlines():
        r = kv(line)
        seen[r["pnr6"]] = int(r["seen_ms"])
    final = {o["personalNumberMasked"][:6]: o["finalUnixMs"] for o in sim.get("orders")["orders"] if o.get("finalUnixMs")}
    sim.stop()
    lat = [seen[k] - final[k] for k in seen if k in final and seen[k] > 0]
    if len(lat) != m:
        FAILED.append(f"detection latency: only {len(lat)} of {m} orders were seen complete")
    if not lat:
        raise SystemExit("detection latency: no order was seen complete")
    print(f"\n## 4. Detection latency: simulator completes the order → bankid_poll reports it ({m} orders, collect every 2 s, completion at random moments 3–7 s after start)\n")
    print("| orders detected | median | p99 | max | min |")
    print("|---|---|---|---|---|")
    print(f"| {len(lat)} of {m} | {statistics.median(lat)} ms | {pct(lat, 99)} ms | {max(lat)} ms | {min(lat)} ms |")


def main():
    try:
        concurrent_orders()
        cost_per_identification()
        detection_latency()
    finally:
        shutil.rmtree(CERTS, ignore_errors=True)
    if FAILED:
        print("\nbench: did not run completely:\n  " + "\n  ".join(FAILED), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
