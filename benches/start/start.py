#!/usr/bin/env python3
"""Start-up figures of the release binary, timed from Python (no shell or curl in the loop):

  palisade scan benches/fixtures/deployment.yaml   process start to exit
  palisade serve (built-in bundle, HTTPS)          process start to the first /readyz 200

  python3 benches/start/start.py [RUNS]      (default 21; build first: cargo build --release -p palisade-cli)

The serve loop waits for the "bundles loaded" log line before it asks /readyz, so that
its polling (a TLS handshake per try) does not compete with the loading for the CPU.
Prints the median, min and max of each, in milliseconds.
"""
import http.client
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
BIN = os.path.join(ROOT, "target", "release", "palisade")
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 21
PORT = 18997


def summary(name, times):
    print(f"{name}: median {statistics.median(times):.1f} ms (min {min(times):.1f}, max {max(times):.1f}, {len(times)} runs)")


def scan():
    fixture = os.path.join(ROOT, "benches", "fixtures", "deployment.yaml")
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run([BIN, "scan", fixture], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append((time.perf_counter() - start) * 1000)
    summary("scan one file, start to result", times)


def serve(work):
    key, cert = os.path.join(work, "k.pem"), os.path.join(work, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        server = subprocess.Popen([BIN, "serve", "--addr", f"127.0.0.1:{PORT}", "--tls-cert", cert, "--tls-key", key,
                                   "--log-format", "json"], stderr=subprocess.PIPE, text=True)
        try:
            for line in server.stderr:
                if "bundles loaded" in line:
                    break
            else:
                sys.exit("start.py: serve exited before loading its bundles")
            while True:
                conn = http.client.HTTPSConnection("127.0.0.1", PORT, context=ctx, timeout=2)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    break
                time.sleep(0.001)
            times.append((time.perf_counter() - start) * 1000)
        finally:
            server.terminate()
            server.wait()
    summary("serve, start to ready", times)


if __name__ == "__main__":
    if not os.access(BIN, os.X_OK):
        sys.exit("start.py: build the release binary first: cargo build --release -p palisade-cli")
    scan()
    with tempfile.TemporaryDirectory() as work:
        serve(work)
