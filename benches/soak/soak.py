"""Steady, bounded load on a running `palisade serve` for a soak test.

    soak.py URL PID BODY_DIR --rate 200 --duration 1800 --interval 10 [--warmup 60] [--csv FILE]

Sends allowed/denied AdmissionReviews (BODY_DIR/allowed.json, denied.json) at a fixed
rate over keep-alive HTTPS connections, and every INTERVAL seconds prints one row: time,
requests and failures in the interval, p50/p99 latency, and the server's RSS (VmRSS of
PID); --csv writes every row to FILE as well (the whole curve). At the end it prints the
verdict and exits 1 when a request failed, when RSS after the warm-up grew by more than
5 %, or when p99 was not stable: the median of the per-interval p99s over the last third
of the run more than 50 % above that of the first third after the warm-up. Latency is measured from the scheduled send
time, so a stalled server shows up as latency, not as a lower rate (no coordinated
omission).
"""
import argparse, http.client, json, pathlib, queue, ssl, statistics, sys, threading, time, urllib.parse


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def worker(url, bodies, jobs, results, ctx):
    parsed = urllib.parse.urlsplit(url)
    conn = None
    while True:
        job = jobs.get()
        if job is None:
            return
        scheduled, n = job
        try:
            if conn is None:
                conn = http.client.HTTPSConnection(parsed.hostname, parsed.port, context=ctx, timeout=10)
            conn.request("POST", parsed.path, bodies[n % 2], {"content-type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            ok = resp.status == 200 and "response" in json.loads(data)
        except Exception as e:  # counted; the connection is replaced
            ok = False
            conn = None
            print(f"request {n}: {e}", file=sys.stderr)
        results.put((time.monotonic() - scheduled, ok))


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("pid", type=int)
    ap.add_argument("bodies")
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--duration", type=float, default=1800)
    ap.add_argument("--interval", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=60)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--csv")
    a = ap.parse_args()
    d = pathlib.Path(a.bodies)
    bodies = [(d / "allowed.json").read_bytes(), (d / "denied.json").read_bytes()]
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    jobs, results = queue.Queue(), queue.Queue()
    threads = [threading.Thread(target=worker, args=(a.url, bodies, jobs, results, ctx), daemon=True)
               for _ in range(a.connections)]
    for t in threads:
        t.start()
    start = time.monotonic()
    n, next_row = 0, start + a.interval
    rows, lat, fails = [], [], 0
    print(f"{'t_s':>6} {'requests':>8} {'failed':>6} {'p50_ms':>7} {'p99_ms':>7} {'rss_mb':>7}", flush=True)
    while True:
        now = time.monotonic()
        if now - start >= a.duration:
            break
        due = start + n / a.rate
        if due <= now:
            jobs.put((due, n))
            n += 1
            continue
        while not results.empty():
            l, ok = results.get()
            lat.append(l)
            fails += 0 if ok else 1
        if now >= next_row:
            row = (round(now - start), len(lat), fails, percentile(lat, 50) * 1e3, percentile(lat, 99) * 1e3,
                   rss_kib(a.pid) / 1024)
            rows.append(row)
            print(f"{row[0]:>6} {row[1]:>8} {row[2]:>6} {row[3]:>7.2f} {row[4]:>7.2f} {row[5]:>7.1f}", flush=True)
            lat, fails, next_row = [], 0, next_row + a.interval
        time.sleep(min(due - now, 0.005))
    for _ in threads:
        jobs.put(None)
    for t in threads:
        t.join(timeout=15)
    while not results.empty():
        l, ok = results.get()
        lat.append(l)
        fails += 0 if ok else 1
    if lat:
        now = time.monotonic()
        rows.append((round(now - start), len(lat), fails, percentile(lat, 50) * 1e3, percentile(lat, 99) * 1e3,
                     rss_kib(a.pid) / 1024))
        r = rows[-1]
        print(f"{r[0]:>6} {r[1]:>8} {r[2]:>6} {r[3]:>7.2f} {r[4]:>7.2f} {r[5]:>7.1f}", flush=True)
    if a.csv:
        with open(a.csv, "w") as f:
            f.write("t_s,requests,failed,p50_ms,p99_ms,rss_mb\n")
            f.writelines(f"{r[0]},{r[1]},{r[2]},{r[3]:.2f},{r[4]:.2f},{r[5]:.1f}\n" for r in rows)
    steady = [r for r in rows if r[0] > a.warmup] or rows
    failed = sum(r[2] for r in rows)
    growth = (steady[-1][5] - steady[0][5]) / steady[0][5] * 100 if steady and steady[0][5] else 0.0
    p99s = [r[4] for r in steady]
    third = max(1, len(p99s) // 3)
    p99_first, p99_last = statistics.median(p99s[:third]), statistics.median(p99s[-third:])
    p99_drift = (p99_last - p99_first) / p99_first * 100 if p99_first else 0.0
    lost = n - sum(r[1] for r in rows)
    failed += lost
    print(f"soak: {n} requests sent, {sum(r[1] for r in rows)} answered in {a.duration:.0f} s at {a.rate:.0f}/s, {failed} failed; "
          f"RSS after warm-up {steady[0][5]:.1f} -> {steady[-1][5]:.1f} MB ({growth:+.1f} %), "
          f"max {max(r[5] for r in steady):.1f} MB; p99 per {a.interval:.0f} s: median "
          f"{statistics.median(p99s):.2f} ms, max {max(p99s):.2f} ms, first third {p99_first:.2f} ms, "
          f"last third {p99_last:.2f} ms ({p99_drift:+.0f} %)")
    sys.exit(1 if failed or growth > 5 or p99_drift > 50 else 0)


if __name__ == "__main__":
    main()
