#!/usr/bin/env python3
"""A share room's messages per second and latency: members spread over three
instances against all on one (docs/distributed.md, "Rooms: how it scales").

Starts its own `redis-server` on a free port and three pixpress instances
with `backend.kind: redis` on it, then, in the same run, one room with every
member on the first instance and one room with the members spread round
robin over the three. In each, `--senders` members send `--messages` text
messages each (at most `--window` of a sender's own unanswered at once),
every member reads every message, and the script reports deliveries per
second, the latency from send to receipt (median, p99) and what Redis did
per message sent (commands by name, bytes in and out).

    python3 scripts/bench_share_room.py --bin target/release/pixpress

Needs `websockets` and Pillow (scripts/clients/requirements.txt) and
`redis-server` / `redis-cli` on the PATH.
"""

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_distributed import start_instances  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.PIPE,
        text=True,
    )
    for line in proc.stdout:
        if "Ready to accept connections" in line:
            break
    else:
        sys.exit("redis-server did not start")
    return proc, f"redis://127.0.0.1:{port}"


def redis_info(url: str) -> dict:
    """Commands by name and network bytes, from INFO."""
    out = subprocess.run(["redis-cli", "-u", url, "INFO", "all"], capture_output=True, text=True).stdout
    calls, stats = {}, {}
    for line in out.splitlines():
        if line.startswith("cmdstat_"):
            name, rest = line[len("cmdstat_"):].split(":", 1)
            calls[name] = int(dict(kv.split("=") for kv in rest.split(","))["calls"])
        elif line.startswith(("total_net_input_bytes:", "total_net_output_bytes:")):
            key, value = line.split(":")
            stats[key] = int(value)
    return {"calls": calls, **stats}


async def member(url: str, expected: int, lat: list, ready: asyncio.Event, done: asyncio.Event, counts: list):
    ws = await websockets.connect(url, max_size=None, max_queue=None)
    await ws.recv()  # userList
    ready.set()
    got = 0
    async for raw in ws:
        m = json.loads(raw)
        if m.get("type") != "text":
            continue
        lat.append(time.perf_counter() - float(m["text"].split(" ", 1)[0]))
        got += 1
        counts[0] += 1
        if got == expected:
            break
    done.set()
    return ws


async def room_run(bases: list, room: str, members: int, senders: int, messages: int, window: int):
    """Deliveries per second and latencies of one room."""
    lat: list = []
    counts = [0]
    expected = senders * messages
    urls = [f"{bases[i % len(bases)].replace('http', 'ws', 1)}/ws/share/{room}?name=m{i}" for i in range(members)]
    readies = [asyncio.Event() for _ in urls]
    dones = [asyncio.Event() for _ in urls]
    readers = [
        asyncio.create_task(member(u, expected, lat, r, d, counts)) for u, r, d in zip(urls, readies, dones)
    ]
    for r in readies:
        await r.wait()
    # Senders have connections of their own (on the instances of the first
    # members), so their echoes do not mix with what the members count.
    send_ws = [
        await websockets.connect(f"{bases[i % len(bases)].replace('http', 'ws', 1)}/ws/share/{room}?name=s{i}")
        for i in range(senders)
    ]
    pad = "x" * 64

    async def send(ws, name):
        unanswered = 0
        sent = 0
        await ws.recv()  # userList
        while sent < messages or unanswered:
            while sent < messages and unanswered < window:
                await ws.send(json.dumps({"type": "text", "text": f"{time.perf_counter()} {pad}"}))
                sent += 1
                unanswered += 1
            m = json.loads(await ws.recv())
            if m.get("type") == "text" and m.get("from") == name:
                unanswered -= 1

    t0 = time.perf_counter()
    await asyncio.gather(*(send(ws, f"s{i}") for i, ws in enumerate(send_ws)))
    for d in dones:
        await asyncio.wait_for(d.wait(), timeout=120)
    elapsed = time.perf_counter() - t0
    for task in readers:
        await (await task).close()
    for ws in send_ws:
        await ws.close()
    lat.sort()
    return {
        "deliveries_per_s": counts[0] / elapsed,
        "messages_per_s": expected / elapsed,
        "p50_ms": statistics.median(lat) * 1000,
        "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000,
    }


def per_message(before: dict, after: dict, sent: int) -> str:
    calls = {
        k: (after["calls"].get(k, 0) - before["calls"].get(k, 0)) / sent
        for k in after["calls"]
        if after["calls"].get(k, 0) - before["calls"].get(k, 0) > 0
    }
    shown = ", ".join(f"{k} {v:.2f}" for k, v in sorted(calls.items(), key=lambda kv: -kv[1]) if v >= 0.01)
    bytes_in = (after["total_net_input_bytes"] - before["total_net_input_bytes"]) / sent
    bytes_out = (after["total_net_output_bytes"] - before["total_net_output_bytes"]) / sent
    return f"per message sent: {shown}; Redis bytes in {bytes_in:.0f}, out {bytes_out:.0f}"


async def bench(bases: list, redis: str, args) -> None:
    sent = args.senders * args.messages
    rows = []
    for trial in range(args.trials):
        for layout, spread in (("all on one instance", bases[:1]), ("spread over three", bases)):
            before = redis_info(redis)
            r = await room_run(spread, f"bench-{trial}-{len(spread)}", args.members, args.senders, args.messages, args.window)
            after = redis_info(redis)
            rows.append((layout, r))
            print(
                f"{layout:20} {r['messages_per_s']:7.0f} msg/s sent, {r['deliveries_per_s']:8.0f} deliveries/s, "
                f"latency p50 {r['p50_ms']:6.1f} ms, p99 {r['p99_ms']:6.1f} ms",
                flush=True,
            )
            if trial == 0:
                print(f"  {per_message(before, after, sent)}", flush=True)
    if args.trials > 1:
        for layout in ("all on one instance", "spread over three"):
            mine = [r for l, r in rows if l == layout]
            print(
                f"median of {args.trials}, {layout:20} {statistics.median(r['messages_per_s'] for r in mine):7.0f} msg/s, "
                f"{statistics.median(r['deliveries_per_s'] for r in mine):8.0f} deliveries/s, "
                f"p99 {statistics.median(r['p99_ms'] for r in mine):6.1f} ms"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="target/release/pixpress")
    ap.add_argument("--members", type=int, default=12, help="reading members per room")
    ap.add_argument("--senders", type=int, default=3)
    ap.add_argument("--messages", type=int, default=500, help="per sender")
    ap.add_argument("--window", type=int, default=8, help="a sender's unanswered messages at most")
    ap.add_argument("--trials", type=int, default=3)
    args = ap.parse_args()
    redis_proc, redis = start_redis()
    procs = []
    try:
        procs, bases, _prefix = start_instances(os.path.abspath(args.bin), 3, redis, 1)
        print(
            f"cores: {os.cpu_count()}; 3 instances on one Redis; {args.members} members + {args.senders} senders, "
            f"{args.messages} texts each (window {args.window}), {args.trials} trials",
            flush=True,
        )
        asyncio.run(bench(bases, redis, args))
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        redis_proc.terminate()
        redis_proc.wait()


if __name__ == "__main__":
    main()
