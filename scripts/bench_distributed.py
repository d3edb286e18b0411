#!/usr/bin/env python3
"""Jobs per second: one instance against two on one Redis (docs/distributed.md).

Starts the pixpress binary with `backend.kind: redis` (each run under its
own key prefix), uploads the same set of distinct small JPEGs spread
round-robin over the instances, waits for every job on /status?wait=, and
reports jobs/s. Every instance has `upload.max_concurrent_tasks` workers, so
two instances have twice the workers: a gain needs the cores to run them.

    python3 scripts/bench_distributed.py --bin target/release/pixpress --jobs 60

With --cost, the cost Redis adds per job instead: one instance with
`backend.kind: memory` against one with `redis`, on the same images. Each
uploads --jobs images one at a time (latency: from sending the upload to the
`done` answer of /status?wait=, median and p90) and then --jobs others 32 at
a time (jobs/s).

    python3 scripts/bench_distributed.py --bin target/release/pixpress --cost --jobs 200 --size 64

Needs Pillow (scripts/clients/requirements.txt) and a Redis at --redis.
"""

import argparse
import concurrent.futures
import io
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

from PIL import Image


def photo_jpeg(size: int, seed: int) -> bytes:
    """A photo-like image: gradients plus noise, JPEG quality 90."""
    rnd = random.Random(seed)
    img = Image.new("RGB", (size, size))
    px = img.load()
    for y in range(size):
        for x in range(size):
            n = rnd.randrange(32)
            px[x, y] = ((x * 255 // size) ^ n, (y * 255 // size), ((x + y) * 127 // size) ^ n)
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=90)
    return out.getvalue()


def upload(base: str, data: bytes) -> str:
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"picture\"; filename=\"p.jpg\"\r\n"
        f"Content-Type: image/jpeg\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(
        f"{base}/upload",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)["md5"]


def wait_done(base: str, md5: str) -> str:
    while True:
        with urllib.request.urlopen(f"{base}/status/{md5}?wait=30", timeout=60) as r:
            states = [v["status"] for v in json.load(r)]
        if all(s in ("done", "error") for s in states):
            return states[0]


def start_instances(binary: str, count: int, redis: str, workers: int, kind: str = "redis"):
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    procs, bases = [], []
    for _ in range(count):
        env = dict(
            os.environ,
            PIXPRESS__SERVER__PORT="0",
            PIXPRESS__TCP__PORT="0",
            PIXPRESS__BACKEND__KIND=kind,
            PIXPRESS__BACKEND__REDIS_URL=redis,
            PIXPRESS__BACKEND__KEY_PREFIX=prefix,
            PIXPRESS__UPLOAD__MAX_CONCURRENT_TASKS=str(workers),
            PIXPRESS__UPLOAD__MAX_QUEUE="10000",
            PIXPRESS__UPLOAD__RATE_LIMIT_PER_MINUTE="0",
            RUST_LOG="info",
        )
        p = subprocess.Popen(
            [binary],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=os.path.dirname(os.path.abspath(__file__)),
        )
        for line in p.stdout:
            m = re.search(r"listening http=(\S+)", line)
            if m:
                bases.append(f"http://{m.group(1)}")
                break
        else:
            sys.exit("an instance did not start")
        # Keep reading its log, so the instance never blocks on a full pipe.
        threading.Thread(target=lambda out=p.stdout: [None for _ in out], daemon=True).start()
        procs.append(p)
    return procs, bases, prefix


def stop_instances(procs, redis: str, prefix: str) -> None:
    for p in procs:
        p.terminate()
        p.wait()
    keys = subprocess.run(
        ["redis-cli", "-u", redis, "--scan", "--pattern", f"{prefix}*"],
        capture_output=True,
        text=True,
    ).stdout.split()
    if keys:
        subprocess.run(["redis-cli", "-u", redis, "DEL", *keys], capture_output=True)


def cost(binary: str, kind: str, one_by_one, together, redis: str, workers: int):
    """Latencies (s) of uploads one at a time, then jobs/s of uploads 32 at a time."""
    procs, bases, prefix = start_instances(binary, 1, redis, workers, kind)
    base = bases[0]
    try:
        wait_done(base, upload(base, photo_jpeg(48, seed=999_999)))  # warm-up
        latencies = []
        for data in one_by_one:
            t0 = time.perf_counter()
            state = wait_done(base, upload(base, data))
            latencies.append(time.perf_counter() - t0)
            assert state == "done", state
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
            md5s = list(pool.map(lambda d: upload(base, d), together))
            states = list(pool.map(lambda m: wait_done(base, m), md5s))
        rate = len(together) / (time.perf_counter() - t0)
        assert all(s == "done" for s in states), states
        return latencies, rate
    finally:
        stop_instances(procs, redis, prefix)


def quantile(values, q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(binary: str, count: int, images, redis: str, workers: int) -> float:
    procs, bases, prefix = start_instances(binary, count, redis, workers)
    try:
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
            md5s = list(pool.map(lambda ib: upload(bases[ib[0] % count], ib[1]), enumerate(images)))
            states = list(pool.map(lambda im: wait_done(bases[im[0] % count], im[1]), enumerate(md5s)))
        elapsed = time.perf_counter() - t0
        assert all(s == "done" for s in states), states
        return len(images) / elapsed
    finally:
        stop_instances(procs, redis, prefix)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="target/release/pixpress")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379")
    ap.add_argument("--jobs", type=int, default=60)
    ap.add_argument("--size", type=int, default=384, help="image side in pixels")
    ap.add_argument("--workers", type=int, default=2, help="upload.max_concurrent_tasks per instance")
    ap.add_argument("--cost", action="store_true", help="memory against redis backend, one instance each")
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    if args.cost:
        print(f"cores: {os.cpu_count()}, jobs: {args.jobs} one by one + {args.jobs} 32 at a time, "
              f"{args.size}x{args.size} JPEG -> WebP q80, one instance")
        results = {}
        for n, kind in enumerate(("memory", "redis")):
            one_by_one = [photo_jpeg(args.size, seed=(n + 1) * 1_000_000 + i) for i in range(args.jobs)]
            together = [photo_jpeg(args.size, seed=(n + 1) * 2_000_000 + i) for i in range(args.jobs)]
            latencies, rate = cost(binary, kind, one_by_one, together, args.redis, args.workers)
            results[kind] = (quantile(latencies, 0.5), rate)
            print(f"{kind:6}: upload->done median {quantile(latencies, 0.5) * 1000:.2f} ms, "
                  f"p90 {quantile(latencies, 0.9) * 1000:.2f} ms; {rate:.1f} jobs/s")
        (m_lat, m_rate), (r_lat, r_rate) = results["memory"], results["redis"]
        print(f"redis adds {(r_lat - m_lat) * 1000:.2f} ms per job (median), "
              f"throughput ratio redis/memory {r_rate / m_rate:.2f}")
        return
    print(f"cores: {os.cpu_count()}, jobs: {args.jobs}, {args.size}x{args.size} JPEG -> WebP q80")
    for count in (1, 2):
        # Distinct images per run, so no result is reused from the other run.
        images = [photo_jpeg(args.size, seed=count * 100_000 + i) for i in range(args.jobs)]
        rate = run(binary, count, images, args.redis, args.workers)
        print(f"{count} instance(s): {rate:.1f} jobs/s")


if __name__ == "__main__":
    main()
