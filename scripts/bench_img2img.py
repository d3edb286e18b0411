#!/usr/bin/env python3
"""img2img round trips: binary frames against base64 JSON (docs/img2img.md).

One producer sends 512x512 JPEG frames into a room with two consumers.
Reported per protocol: round-trip p50/p99 with one frame at a time, frames
per second with one frame at a time and with a window of frames in flight,
bytes on the wire per frame, and that every consumer got every result.

    python3 scripts/bench_img2img.py --url ws://127.0.0.1:8080 --frames 200

Needs `websockets` and Pillow (scripts/clients/requirements.txt).
"""

import argparse
import asyncio
import base64
import io
import json
import random
import statistics
import time

import websockets
from PIL import Image


def frame_jpeg(size: int, seed: int) -> bytes:
    """A photo-like frame: gradients plus noise, JPEG quality 85."""
    rnd = random.Random(seed)
    img = Image.new("RGB", (size, size))
    px = img.load()
    for y in range(size):
        for x in range(size):
            n = rnd.randrange(24)
            px[x, y] = ((x * 255 // size) ^ n, (y * 255 // size), ((x + y) * 127 // size) ^ n)
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=85)
    return out.getvalue()


def percentile(values, p):
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


class Consumer:
    def __init__(self, url):
        self.url = url
        self.results = 0
        self.wire_bytes = 0
        self.ws = None

    async def start(self):
        self.ws = await websockets.connect(self.url, max_size=None)
        assert json.loads(await self.ws.recv())["type"] == "welcome"
        await self.ws.send(json.dumps({"type": "register", "client_type": "consumer"}))
        assert json.loads(await self.ws.recv())["type"] == "registered"
        self.task = asyncio.create_task(self.run())

    async def run(self):
        async for msg in self.ws:
            self.wire_bytes += len(msg)
            if isinstance(msg, bytes):
                self.results += 1
            else:
                kind = json.loads(msg)["type"]
                if kind == "img2img_result":
                    self.results += 1
                elif kind == "error":
                    raise RuntimeError(msg)

    async def wait_for(self, n, timeout=120):
        deadline = time.monotonic() + timeout
        while self.results < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"consumer got {self.results} of {n}")
            await asyncio.sleep(0.01)


async def run_mode(url, mode, frames, prompt, window):
    consumers = [Consumer(url), Consumer(url)]
    for c in consumers:
        await c.start()
    producer = await websockets.connect(url, max_size=None)
    assert json.loads(await producer.recv())["type"] == "welcome"
    await producer.send(json.dumps({"type": "register", "client_type": "producer"}))
    await producer.recv()

    sent_bytes = 0
    received_bytes = 0

    async def send(i, frame):
        nonlocal sent_bytes
        if mode == "binary":
            meta = json.dumps({"type": "img2img_binary", "prompt": prompt, "format": "jpeg", "timestamp": i})
            await producer.send(meta)
            await producer.send(frame)
            sent_bytes += len(meta) + len(frame)
        else:
            msg = json.dumps({"type": "img2img", "image": base64.b64encode(frame).decode(),
                              "prompt": prompt, "timestamp": i})
            await producer.send(msg)
            sent_bytes += len(msg)

    async def receive():
        nonlocal received_bytes
        msg = await producer.recv()
        received_bytes += len(msg)
        meta = json.loads(msg)
        if meta["type"] == "error":
            raise RuntimeError(meta)
        if mode == "binary":
            data = await producer.recv()
            received_bytes += len(data)
        return meta["timestamp"]

    source = [frame_jpeg(512, s) for s in range(8)]
    for i in range(5):  # warm-up, not counted
        await send(-1, source[i % len(source)])
        await receive()
    for c in consumers:
        await c.wait_for(5)
        c.results, c.wire_bytes = 0, 0
    sent_bytes = received_bytes = 0

    # One frame at a time: round-trip latency.
    rtts = []
    started = time.perf_counter()
    for i in range(frames):
        t0 = time.perf_counter()
        await send(i, source[i % len(source)])
        assert await receive() == i
        rtts.append((time.perf_counter() - t0) * 1000)
    sequential_fps = frames / (time.perf_counter() - started)
    per_frame_up = sent_bytes / frames
    per_frame_down = received_bytes / frames

    # A window of frames in flight: throughput.
    started = time.perf_counter()
    in_flight = 0
    done = 0
    next_i = 0
    while done < frames:
        while in_flight < window and next_i < frames:
            await send(frames + next_i, source[next_i % len(source)])
            next_i += 1
            in_flight += 1
        await receive()
        in_flight -= 1
        done += 1
    windowed_fps = frames / (time.perf_counter() - started)

    for c in consumers:
        await c.wait_for(2 * frames)
    consumer_per_frame = consumers[0].wire_bytes / (2 * frames)
    for c in consumers:
        await c.ws.close()
    await producer.close()
    return {
        "mode": mode,
        "rtt_p50_ms": statistics.median(rtts),
        "rtt_p99_ms": percentile(rtts, 99),
        "fps_one_at_a_time": sequential_fps,
        f"fps_window_{window}": windowed_fps,
        "bytes_up_per_frame": per_frame_up,
        "bytes_down_per_frame": per_frame_down,
        "bytes_per_consumer_per_frame": consumer_per_frame,
        "consumers_got_all": all(c.results == 2 * frames for c in consumers),
        "input_jpeg_bytes": statistics.mean(len(f) for f in source),
    }


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8080", help="server base URL")
    parser.add_argument("--room", default="bench")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--window", type=int, default=4, help="frames in flight (<= img2img.max_in_flight)")
    parser.add_argument("--prompt", default="quality 80", help="edit recipe run on every frame")
    args = parser.parse_args()
    url = f"{args.url}/ws/img2img/{args.room}"
    results = [await run_mode(url, mode, args.frames, args.prompt, args.window)
               for mode in ("binary", "base64")]
    for r in results:
        print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()}))
    binary, b64 = results
    up = 1 - binary["bytes_up_per_frame"] / b64["bytes_up_per_frame"]
    down = 1 - binary["bytes_per_consumer_per_frame"] / b64["bytes_per_consumer_per_frame"]
    print(f"binary frames save {up:.1%} of the bytes sent and {down:.1%} of the bytes each consumer receives")
    print(f"round trip p50: binary {binary['rtt_p50_ms']:.1f} ms, base64 {b64['rtt_p50_ms']:.1f} ms "
          f"(ratio {b64['rtt_p50_ms'] / binary['rtt_p50_ms']:.2f})")


if __name__ == "__main__":
    asyncio.run(main())
