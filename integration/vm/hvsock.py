#!/usr/bin/env python3
"""Host-side helpers of the VM proof, over the VMM's hybrid vsock socket
(the protocol of Kata's clh/fc/dragonball: connect to the unix socket, send
"CONNECT <port>\\n", read "OK <n>\\n", then the stream is the guest port).

  hvsock.py wait SOCK PORT SECS   until the guest listens on PORT
  hvsock.py sh SOCK               stdin: a shell script run in the guest
                                  (control channel, port 1030); its output
                                  on stdout, its exit status as ours
  hvsock.py mgmt SOCKET URL       serve GET /agent-url with URL on the unix
                                  SOCKET, as the Kata shim's management
                                  socket does (shim-monitor.sock)
"""
import http.server
import os
import re
import socket
import socketserver
import sys
import time

CONTROL_PORT = 1030
RC_MARK = b"__kata_cr_vm_rc="


def connect(path, port, timeout=10.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    s.sendall(b"CONNECT %d\n" % port)
    line = b""
    while not line.endswith(b"\n"):
        b = s.recv(1)
        if not b:
            raise ConnectionError(f"{path}: closed during CONNECT {port} (nothing listens there)")
        line += b
    if not line.startswith(b"OK "):
        raise ConnectionError(f"{path}: CONNECT {port} answered {line!r}")
    s.settimeout(None)
    return s


def wait(path, port, secs):
    deadline = time.monotonic() + float(secs)
    last = None
    while time.monotonic() < deadline:
        try:
            connect(path, int(port), timeout=2).close()
            return 0
        except OSError as e:
            last = e
            time.sleep(0.5)
    print(f"hvsock: guest port {port} not reachable through {path} within {secs}s: {last}", file=sys.stderr)
    return 1


def sh(path):
    script = sys.stdin.buffer.read()
    s = connect(path, CONTROL_PORT)
    # No half-close: vhost-device-vsock turns the host's shutdown(SHUT_WR)
    # into a full shutdown of the guest's socket. The shell ends the
    # exchange itself (commands must not read stdin).
    s.sendall(script + b"\necho " + RC_MARK + b"$?\nexit\n")
    # Read up to the status line: once the shell has exited, socat still
    # waits (-t) for this side's EOF, which we cannot send (see above).
    out = b""
    while not re.search(re.escape(RC_MARK) + rb"\d+\n", out):
        b = s.recv(65536)
        if not b:
            break
        out += b
    s.close()
    i = out.rfind(RC_MARK)
    if i < 0:
        sys.stdout.buffer.write(out)
        print("hvsock: the guest shell ended without a status", file=sys.stderr)
        return 255
    sys.stdout.buffer.write(out[:i])
    return int(out[i + len(RC_MARK):].split()[0])


def mgmt(sock, url):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/agent-url":
                body = url.encode()
                self.send_response(200)
            else:
                body = b"404 page not found\n"
                self.send_response(404)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def address_string(self):
            return "unix"

        def log_message(self, *args):
            pass

    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

    try:
        os.unlink(sock)
    except FileNotFoundError:
        pass
    with Server(sock, Handler) as srv:
        srv.serve_forever()


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "wait":
        sys.exit(wait(*args))
    if cmd == "sh":
        sys.exit(sh(*args))
    if cmd == "mgmt":
        mgmt(*args)
    print(__doc__, file=sys.stderr)
    sys.exit(2)
