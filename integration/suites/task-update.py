#!/usr/bin/env python3
"""task-update.py SOCKET NAMESPACE CONTAINER MEMORY_LIMIT_BYTES

containerd's Tasks.Update (what `ctr t update --memory-limit` did before ctr dropped the
command; CRI's UpdateContainerResources ends in the same RPC). ctr 2.1.x has no
`tasks update`, and the bed has no gRPC library, so this speaks just enough HTTP/2 + gRPC
by hand, standard library only: prior-knowledge HTTP/2 over the unix socket, one unary
call, HPACK literals without Huffman for the request.

Exit 0 when the server answered with a gRPC message (UpdateTask returns Empty), 1 with the
raw trailers on stderr otherwise (errors come as trailers-only responses; the message is
HPACK-encoded, possibly with Huffman, and is printed as hex + printable bytes).
"""
import json
import socket
import struct
import sys


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(num, data):
    return varint(num << 3 | 2) + varint(len(data)) + data


def hpack_int(n, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if n < limit:
        return bytes([first | n])
    out = bytearray([first | limit])
    n -= limit
    while n >= 128:
        out.append(n % 128 + 128)
        n //= 128
    out.append(n)
    return bytes(out)


def hpack_literal(name, value):
    # literal header field without indexing, new name, no Huffman
    name, value = name.encode(), value.encode()
    return b"\x00" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value


def frame(ftype, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return buf


def unary(sock_path, ns, method, req, who):
    """One unary gRPC call of containerd's API; returns 0 on a message, 1 otherwise
    (the raw trailers on stderr)."""
    grpc_msg = b"\x00" + struct.pack(">I", len(req)) + req
    headers = b"".join(
        hpack_literal(k, v)
        for k, v in [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", method),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("containerd-namespace", ns),
        ]
    )
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(sock_path)
    s.sendall(
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        + frame(4, 0, 0, b"")  # SETTINGS
        + frame(1, 0x4, 1, headers)  # HEADERS, END_HEADERS
        + frame(0, 0x1, 1, grpc_msg)  # DATA, END_STREAM
    )
    got_message = False
    blocks = []
    while True:
        hdr = recv_exact(s, 9)
        length = int.from_bytes(hdr[:3], "big")
        ftype, flags = hdr[3], hdr[4]
        stream = struct.unpack(">I", hdr[5:9])[0] & 0x7FFFFFFF
        payload = recv_exact(s, length)
        if ftype == 4 and not flags & 0x1:  # SETTINGS -> ACK
            s.sendall(frame(4, 0x1, 0, b""))
        elif ftype == 6 and not flags & 0x1:  # PING -> PONG
            s.sendall(frame(6, 0x1, 0, payload))
        elif ftype == 0 and stream == 1:  # DATA
            if len(payload) >= 5:
                got_message = True
            if flags & 0x1:
                break
        elif ftype in (1, 9) and stream == 1:  # HEADERS / CONTINUATION
            blocks.append(payload)
            if flags & 0x1:  # END_STREAM
                break
        elif ftype == 3 and stream == 1:  # RST_STREAM
            print("%s: stream reset, code %d" % (who, struct.unpack(">I", payload)[0]), file=sys.stderr)
            return 1
        elif ftype == 7:  # GOAWAY
            print("%s: GOAWAY %r" % (who, payload), file=sys.stderr)
            return 1
    s.close()
    if got_message:
        return 0
    raw = b"".join(blocks)
    printable = "".join(chr(b) if 32 <= b < 127 else "." for b in raw)
    print("%s: no message; trailers %s [%s]" % (who, raw.hex(), printable), file=sys.stderr)
    return 1


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    sock_path, ns, cid, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    resources = json.dumps({"memory": {"limit": limit}}).encode()
    any_msg = field_bytes(1, b"types.containerd.io/opencontainers/runtime-spec/1/LinuxResources") + field_bytes(2, resources)
    req = field_bytes(1, cid.encode()) + field_bytes(2, any_msg)
    return unary(sock_path, ns, "/containerd.services.tasks.v1.Tasks/Update", req, "task-update")


if __name__ == "__main__":
    sys.exit(main())
