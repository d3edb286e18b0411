#!/usr/bin/env python3
"""Share an image (or a text) into a pixpress share room (docs/rooms.md).

    python3 scripts/share_room.py --room team --name ann photo.jpg
    python3 scripts/share_room.py --room team --name ann --text "hello"

The image is sent as imageUploadStart plus base64 chunks; the script prints
the progress and the processed image's size as the room sees it, then
exits: 0 when the room has the image, 1 on an imageUploadError.
Needs `websockets` (scripts/clients/requirements.txt).
"""

import argparse
import asyncio
import base64
import json
import mimetypes
import os
import sys
import uuid
from urllib.parse import quote

import websockets


async def share(url: str, path: str | None, text: str | None, chunk_chars: int) -> int:
    async with websockets.connect(url, max_size=None) as ws:
        if text is not None:
            await ws.send(json.dumps({"type": "text", "text": text}))
            async for raw in ws:
                msg = json.loads(raw)
                if msg["type"] == "text" and msg["text"] == text:
                    print(f"sent to the room as {msg['from']}")
                    return 0
                if msg["type"] == "error":
                    print(f"error: {msg['error']}", file=sys.stderr)
                    return 1
            return 1

        with open(path, "rb") as f:
            data = f.read()
        filename = os.path.basename(path)
        upload_id = uuid.uuid4().hex
        encoded = base64.b64encode(data).decode("ascii")
        step = max(4, chunk_chars // 4 * 4)
        chunks = [encoded[i:i + step] for i in range(0, len(encoded), step)] or [""]
        await ws.send(json.dumps({
            "type": "imageUploadStart", "filename": filename, "uploadId": upload_id,
            "mimeType": mimetypes.guess_type(filename)[0] or "application/octet-stream",
            "size": len(data),
        }))
        for index, chunk in enumerate(chunks):
            await ws.send(json.dumps({
                "type": "imageUploadChunk", "filename": filename, "uploadId": upload_id,
                "chunkIndex": index, "totalChunks": len(chunks), "data": chunk,
            }))

        # History and other members' messages may arrive too: only ours count.
        async for raw in ws:
            msg = json.loads(raw)
            if msg.get("uploadId") != upload_id:
                continue
            if msg["type"] == "imageUploadProgress":
                print(f"\rupload {msg['progress']:3d}%", end="", flush=True)
            elif msg["type"] == "imageUploadComplete":
                print(f"\nshared {filename}: {msg['mimeType']} {msg['width']}x{msg['height']}, "
                      f"{msg['size']} bytes (was {len(data)})")
                return 0
            elif msg["type"] == "imageUploadError":
                print(f"\nrefused: {msg['error']}", file=sys.stderr)
                return 1
        return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", help="image to share")
    parser.add_argument("--text", help="share this text instead of a file")
    parser.add_argument("--server", default="ws://localhost:8080")
    parser.add_argument("--room", default="lobby")
    parser.add_argument("--name", default="script")
    parser.add_argument("--chunk-chars", type=int, default=32768,
                        help="base64 characters per chunk (the server's share.chunk_size)")
    args = parser.parse_args()
    if (args.file is None) == (args.text is None):
        parser.error("give a file or --text")
    url = f"{args.server}/ws/share/{quote(args.room)}?name={quote(args.name)}"
    try:
        return asyncio.run(share(url, args.file, args.text, args.chunk_chars))
    except (OSError, websockets.WebSocketException) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
