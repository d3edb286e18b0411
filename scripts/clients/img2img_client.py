#!/usr/bin/env python3
"""img2img over WebSocket with binary frames: the example of docs/img2img.md.

Sends an image with an edit recipe as a prompt and saves the result:

    python3 img2img_client.py --url ws://localhost:8080/ws/img2img \
        --input photo.jpg --prompt "resize 512x512, grayscale" --output out.jpg

The flow: receive the welcome, send the metadata (JSON), send the bytes
(binary frame), receive the metadata (JSON), receive the bytes (binary frame).
Without --input, a test picture is drawn with Pillow.
"""

import argparse
import asyncio
import io
import json
import sys
import time

import websockets
from PIL import Image, ImageDraw


def test_picture() -> bytes:
    img = Image.new("RGB", (512, 512), "white")
    draw = ImageDraw.Draw(img)
    for i in range(0, 512, 32):
        draw.rectangle([i, i, 511 - i, 511 - i], outline=(i % 256, 80, 255 - i % 256), width=8)
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=90)
    return out.getvalue()


async def img2img(url: str, image: bytes, prompt: str, fmt: str) -> tuple[dict, bytes]:
    async with websockets.connect(url, max_size=None) as ws:
        welcome = json.loads(await ws.recv())
        assert welcome["type"] == "welcome", welcome

        # 1. metadata, 2. the image as one binary frame
        sent_at = time.time()
        await ws.send(json.dumps({
            "type": "img2img_binary",
            "prompt": prompt,
            "format": fmt,
            "timestamp": sent_at,
        }))
        await ws.send(image)

        # 3. the result's metadata, 4. the result's bytes
        meta = json.loads(await ws.recv())
        if meta["type"] == "error":
            raise RuntimeError(f"server error {meta['message']}: {meta.get('detail', '')}")
        assert meta["type"] == "img2img_result_binary", meta
        assert meta["timestamp"] == sent_at, "the request's timestamp is echoed"
        result = await ws.recv()
        assert isinstance(result, bytes), "the result follows as a binary frame"
        return meta, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://localhost:8080/ws/img2img")
    parser.add_argument("--input", help="image file to send (default: a drawn test picture)")
    parser.add_argument("--prompt", default="resize 256x256, grayscale")
    parser.add_argument("--format", default="jpeg", help="output format unless the prompt names one")
    parser.add_argument("--output", default="img2img_result.jpg")
    args = parser.parse_args()

    if args.input:
        with open(args.input, "rb") as f:
            image = f.read()
    else:
        image = test_picture()

    started = time.perf_counter()
    meta, result = asyncio.run(img2img(args.url, image, args.prompt, args.format))
    elapsed_ms = (time.perf_counter() - started) * 1000

    # Pillow checks that what came back is a real image.
    picture = Image.open(io.BytesIO(result))
    picture.load()
    with open(args.output, "wb") as f:
        f.write(result)
    ignored = ", ".join(meta.get("ignored", [])) or "none"
    print(f"{picture.format} {picture.width}x{picture.height}, {len(result)} bytes "
          f"in {elapsed_ms:.0f} ms -> {args.output} (ignored words: {ignored})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
