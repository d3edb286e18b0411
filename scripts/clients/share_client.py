#!/usr/bin/env python3
"""Image-sharing client for pixpress's TCP protocol (standard library only).

Each message is a 4-byte big-endian length followed by a pickled dict with
the keys COMMAND, STATUS, DETAILS, FILENAME and FILE_DATA.

    share_client.py put photo.jpg
    share_client.py get photo.jpg -o copy.jpg
    share_client.py list
    share_client.py --host 10.0.0.5 --port 9090 --protocol 2 list

Exit status: 0 on an OK reply, 1 on an ERROR reply, 2 on a usage or
connection problem. The reply's DETAILS is printed.
"""

import argparse
import os
import pickle
import socket
import struct
import sys

MAX_REPLY_BYTES = 1 << 31


def recv_exact(sock, n):
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise ConnectionError("the server closed the connection")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def send_message(sock, message, protocol=pickle.DEFAULT_PROTOCOL):
    body = pickle.dumps(message, protocol=protocol)
    sock.sendall(struct.pack(">I", len(body)) + body)


def recv_message(sock):
    (length,) = struct.unpack(">I", recv_exact(sock, 4))
    if length > MAX_REPLY_BYTES:
        raise ConnectionError("reply of %d bytes is too large" % length)
    return pickle.loads(recv_exact(sock, length))


def request(command, filename=None, file_data=None):
    return {
        "COMMAND": command,
        "STATUS": "REQUEST",
        "DETAILS": None,
        "FILENAME": filename,
        "FILE_DATA": file_data,
    }


def exchange(host, port, message, protocol, timeout):
    with socket.create_connection((host, port), timeout=timeout) as sock:
        send_message(sock, message, protocol)
        return recv_message(sock)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Share images with a pixpress server over TCP.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9090)
    parser.add_argument("--protocol", type=int, default=pickle.DEFAULT_PROTOCOL,
                        help="pickle protocol for requests (2 to 5)")
    parser.add_argument("--timeout", type=float, default=60.0, help="socket timeout in seconds")
    sub = parser.add_subparsers(dest="command", required=True)
    put = sub.add_parser("put", help="upload a JPEG or PNG file")
    put.add_argument("file")
    put.add_argument("--name", help="name to store it under (default: the file's name)")
    get = sub.add_parser("get", help="download a file")
    get.add_argument("name")
    get.add_argument("-o", "--output", help="where to write it (default: the name, in the current directory)")
    sub.add_parser("list", help="list the stored files")
    args = parser.parse_args(argv)

    if args.command == "put":
        with open(args.file, "rb") as f:
            data = f.read()
        message = request("PUT", args.name or os.path.basename(args.file), data)
    elif args.command == "get":
        message = request("GET", args.name)
    else:
        message = request("LIST")

    try:
        reply = exchange(args.host, args.port, message, args.protocol, args.timeout)
    except (OSError, ConnectionError, pickle.UnpicklingError, struct.error) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2

    if reply.get("STATUS") != "OK":
        print("ERROR: %s" % reply.get("DETAILS"), file=sys.stderr)
        return 1
    details = reply.get("DETAILS")
    if args.command == "get":
        output = args.output or os.path.basename(reply["FILENAME"])
        with open(output, "wb") as f:
            f.write(reply["FILE_DATA"])
        print("saved %s (%s)" % (output, details))
    elif isinstance(details, list):
        for name in details:
            print(name)
    else:
        print(details)
    return 0


if __name__ == "__main__":
    sys.exit(main())
