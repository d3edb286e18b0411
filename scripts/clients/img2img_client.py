#!/usr/bin/env python3
"""img2img over WebSocket: the example of docs/img2img.md.

Sends an image with an edit recipe as a prompt and saves the result:

    python3 img2img_client.py --url ws://localhost:8080/ws/img2img \
        --input photo.jpg --prompt "grayscale" --output out.jpg

Binary protocol (default): receive the welcome, send the metadata (JSON),
send the bytes (binary frame), receive the metadata (JSON), receive the bytes
(binary frame). Base64 protocol (--protocol base64): one JSON request with the
image inside, one JSON answer with the result inside.

Like the original clients it keeps the websockets library's default frame
limit (1 MiB): the server's default answer (a JPEG inside 512x512) fits.
Without --input, a test picture is drawn with Pillow.
"""

import argparse
import asyncio
import base64
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


async def img2img(url: str, image: bytes, prompt: str, fmt: str,
                  protocol: str) -> tuple[dict, bytes]:
    async with websockets.connect(url) as ws:
        welcome = json.loads(await ws.recv())
        assert welcome["type"] == "welcome", welcome

        sent_at = time.time()
        if protocol == "base64":
            await ws.send(json.dumps({
                "type": "img2img",
                "image": base64.b64encode(image).decode("ascii"),
                "prompt": prompt,
                "timestamp": sent_at,
            }))
            meta = json.loads(await ws.recv())
            check(meta, "img2img_result", sent_at)
            return meta, base64.b64decode(meta["image"])

        # 1. metadata, 2. the image as one binary frame
        await ws.send(json.dumps({
            "type": "img2img_binary",
            "prompt": prompt,
            "format": fmt,
            "timestamp": sent_at,
        }))
        await ws.send(image)

        # 3. the result's metadata, 4. the result's bytes
        meta = json.loads(await ws.recv())
        check(meta, "img2img_result_binary", sent_at)
        result = await ws.recv()
        assert isinstance(result, bytes), "the result follows as a binary frame"
        return meta, result


def check(meta: dict, expected: str, sent_at: float) -> None:
    if meta["type"] == "error":
        raise RuntimeError(f"server error {meta['message']}: {meta.get('detail', '')}")
    assert meta["type"] == expected, meta
    assert meta["timestamp"] == sent_at, "the request's timestamp is echoed"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://localhost:8080/ws/img2img")
    parser.add_argument("--input", help="image file to send (default: a drawn test picture)")
    parser.add_argument("--prompt", default="grayscale",
                        help="edit recipe; without a size step the result fits inside 512x512")
    parser.add_argument("--format", default="jpeg",
                        help="the format of the image sent, as the metadata says it")
    parser.add_argument("--protocol", choices=["binary", "base64"], default="binary")
    parser.add_argument("--output", default="img2img_result.jpg")
    args = parser.parse_args()

    if args.input:
        with open(args.input, "rb") as f:
            image = f.read()
    else:
        image = test_picture()

    started = time.perf_counter()
    meta, result = asyncio.run(img2img(args.url, image, args.prompt, args.format, args.protocol))
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
