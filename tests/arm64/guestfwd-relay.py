#!/usr/bin/env python3
"""A QEMU user-net guestfwd "cmd:" relay: QEMU runs it once per guest
connection with that connection on stdin/stdout (a socket), and it joins
the connection to HOST:PORT on this machine (127.0.0.1 only), passing
half-closes on, so each guest connection is one host connection.

usage: guestfwd-relay.py HOST PORT
"""
import os
import select
import socket
import sys


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    if not host.startswith("127."):
        sys.exit("guestfwd-relay: loopback only")
    guest = socket.socket(fileno=os.dup(0))
    up = socket.create_connection((host, port), timeout=30)
    up.settimeout(None)
    peer = {guest: up, up: guest}
    open_ = {guest, up}
    while open_:
        ready, _, _ = select.select(list(open_), [], [])
        for s in ready:
            try:
                data = s.recv(1 << 16)
            except ConnectionError:
                data = b""
            if data:
                peer[s].sendall(data)
                continue
            open_.discard(s)
            try:
                peer[s].shutdown(socket.SHUT_WR)
            except OSError:
                pass
    up.close()
    guest.close()


if __name__ == "__main__":
    main()
