"""Writes the fuzz targets' seed inputs into DIR/<target>/ from the
committed test fixtures and from pickles made here. Standard library only."""

import json
import os
import pickle
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGE_DIRS = [
    ROOT / "crates/pipeline/tests/fixtures",
    ROOT / "crates/pipeline/tests/fixtures/bad",
    ROOT / "tests/web/fixtures",
]
RECIPES = [
    "resize 512x512, grayscale | blur 1.5, quality 85, format webp",
    "crop 10,10,200,200 rotate 90 flip h sharpen",
    "width 800 height 600 brightness -20 contrast 30 invert",
    "a beautiful landscape, oil painting",
    "quality 101 format gif resize 0x0 rotate 45 blur -1",
]


class Shell:
    """Pickles into a call of os.system: the gate must refuse it unread."""

    def __reduce__(self):
        return (os.system, ("true",))


def requests():
    png = (ROOT / "crates/pipeline/tests/fixtures/basn3p04.png").read_bytes()
    yield {"COMMAND": "LIST", "STATUS": "REQUEST", "DETAILS": None, "FILENAME": None, "FILE_DATA": None}
    yield {"COMMAND": "LIST", "STATUS": None, "DETAILS": None, "FILENAME": None, "FILE_DATA": None}
    yield {"COMMAND": "PUT", "STATUS": "REQUEST", "DETAILS": None, "FILENAME": "a.png", "FILE_DATA": png}
    yield {"COMMAND": "GET", "STATUS": None, "DETAILS": None, "FILENAME": "a.png", "FILE_DATA": None}
    yield {"COMMAND": "PUT", "FILENAME": "s.png", "FILE_DATA": bytearray(b"x"), "DETAILS": {1, 2}}


WS_MESSAGES = [
    {"filename": "a.jpg", "format": "jpg", "quality": 80, "data": "/9j/4AAQSkZJRg=="},
    {"filename": "a.png", "format": "webp", "width": "800", "fit": "cover", "max_bytes": "200KB", "id": 7},
    {"type": "imageUploadStart", "filename": "a.jpg", "mimeType": "image/jpeg", "size": 1234, "uploadId": "u1"},
    {"type": "imageUploadChunk", "filename": "a.jpg", "chunkIndex": 0, "totalChunks": 2, "data": "data:image/png;base64,iVBORw0KGgo"},
    {"type": "text", "text": "hello"},
    {"type": "textUpdate", "text": "the whole pad"},
    {"type": "register", "client_type": "consumer"},
    {"type": "img2img", "image": "iVBORw0KGgo=", "prompt": "resize 512x512", "timestamp": 1.5},
    {"type": "img2img_binary", "prompt": "grayscale", "format": "jpeg", "timestamp": 2},
    {"type": "request", "timestamp": 1700000000, "id": "r1", "payloadType": "subscribe", "payload": {"lastEventId": 3}},
    {"type": "request", "id": 2, "payloadType": "new", "payload": {"chatId": "bob", "message": "hi", "attachments": [{"type": "image", "data": "iVBORw0KGgo="}]}},
    {"type": "request", "id": "r3", "payloadType": "getMessages", "payload": {"chatId": "bob", "endId": 9, "count": 20}},
    {"type": "event", "eventType": "typing", "payload": {"chatId": "bob"}},
]


def multipart(fields, boundary="XfuzzX"):
    out = b""
    for name, value, filename in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def write(directory, name, data):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data)


def main(out):
    images = [p for d in IMAGE_DIRS if d.is_dir() for p in sorted(d.iterdir()) if p.is_file() and p.suffix != ".md"]
    for path in images:
        data = path.read_bytes()
        write(out / "probe", path.name, data)
        if len(data) <= 32 * 1024:
            for choice in range(3):
                write(out / "process", f"{choice}-{path.name}", bytes([choice]) + data)
    for i, text in enumerate(RECIPES):
        write(out / "recipe", f"recipe-{i}", text.encode())
    frames = b""
    for i, request in enumerate(requests()):
        for protocol in (2, 4, 5):
            body = pickle.dumps(request, protocol=protocol)
            write(out / "pickle_scan", f"request-{i}-p{protocol}", body)
            frames += struct.pack(">I", len(body)) + body
    write(out / "pickle_scan", "reduce-os-system", pickle.dumps(Shell(), protocol=4))
    write(out / "tcp_frame", "requests", frames)
    for i, message in enumerate(WS_MESSAGES):
        write(out / "ws_messages", f"message-{i}", json.dumps(message).encode())
    png = (ROOT / "crates/pipeline/tests/fixtures/basn3p04.png").read_bytes()
    write(out / "multipart_upload", "png", multipart([("picture", png, "a.png"), ("format", b"jpg", None)]))
    write(out / "multipart_upload", "options-first", multipart([("quality", b"50", None), ("width", b"16", None), ("picture", png, "a.png")]))
    write(out / "multipart_upload", "text", multipart([("picture", b"not an image", "a.jpg")]))
    write(out / "tcp_frame", "huge-prefix", struct.pack(">I", 0xFFFFFFFF) + b"x" * 16)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
