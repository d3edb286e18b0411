#!/usr/bin/env python3
"""Memory under load: N concurrent uploads of ~SIZE bytes each, then the
server's peak resident memory (VmHWM of --pid, read from /proc).

    python3 scripts/load_memory.py --url http://127.0.0.1:8080 --pid PID IMAGE [--clients 64] [--size 10MB]

Each upload is IMAGE padded after its end to SIZE bytes (decoders ignore the
tail), with a different pad per client so every upload is a new task.
Standard library only. Uploads answered 503 are sent again after their
Retry-After; the script reports how many were, and exits 1 if any job failed.
"""

import argparse
import http.client
import json
import sys
import threading
import time
import urllib.parse


def parse_size(text: str) -> int:
    units = {"KB": 1024, "MB": 1024**2, "GB": 1024**3}
    for unit, mult in units.items():
        if text.upper().endswith(unit):
            return int(float(text[: -len(unit)]) * mult)
    return int(text)


def vm(pid: int, key: str) -> str:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split(":", 1)[1].strip()
    return "?"


def upload(url: urllib.parse.ParseResult, body: bytes, fmt: str, results: list, i: int) -> None:
    boundary = "pixpressboundary"
    head = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"format\"\r\n\r\n{fmt}\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"picture\"; filename=\"x.jpg\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    payload = head + body + f"\r\n--{boundary}--\r\n".encode()
    retries = 0
    while True:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
        conn.request("POST", "/upload", payload, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        resp = conn.getresponse()
        answer = json.loads(resp.read())
        if resp.status == 503:
            retries += 1
            time.sleep(min(float(resp.getheader("Retry-After", "1")), 1.0))
            continue
        break
    if resp.status not in (200, 202):
        results[i] = ("upload", resp.status, answer, retries)
        return
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
    while True:
        conn.request("GET", f"/status/{answer['md5']}?wait=30")
        status = json.loads(conn.getresponse().read())
        if all(v["status"] in ("done", "error") for v in status):
            break
    results[i] = (status[0]["status"], 200, status[0].get("error"), retries)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("image")
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--size", default="10MB")
    p.add_argument("--format", default="webp")
    a = p.parse_args()
    url = urllib.parse.urlparse(a.url)
    base = open(a.image, "rb").read()
    size = parse_size(a.size)
    bodies = [base + i.to_bytes(4, "big") * ((size - len(base)) // 4) for i in range(a.clients)]
    print(f"before: VmRSS {vm(a.pid, 'VmRSS')}, VmHWM {vm(a.pid, 'VmHWM')}")
    results: list = [None] * a.clients
    started = time.time()
    threads = [threading.Thread(target=upload, args=(url, b, a.format, results, i)) for i, b in enumerate(bodies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.time() - started
    done = sum(1 for r in results if r and r[0] == "done")
    retried = sum(r[3] for r in results if r)
    print(f"{a.clients} uploads of {len(bodies[0]) / 1024 / 1024:.1f} MiB: {done} done in {took:.1f}s, {retried} retries after 503")
    print(f"after: VmRSS {vm(a.pid, 'VmRSS')}, VmHWM (peak) {vm(a.pid, 'VmHWM')}")
    failed = [r for r in results if not r or r[0] != "done"]
    for r in failed[:5]:
        print("failed:", r)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
