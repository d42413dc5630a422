"""Work under way that no task of the event loop shows: what the kernel holds for this
process's TCP sockets to and from the stand-in, and this process's other threads running.

- A connection being opened or closed, one not yet accepted, bytes not yet read or not yet
  acknowledged.
- A thread that can run: uvloop resolves the address of every `sock_connect` (aiohttp's way
  of connecting, through aiohappyeyeballs) in libuv's thread pool, even "127.0.0.1", and the
  connection is made only once a worker thread has had a CPU. On a busy machine that is
  milliseconds later, however many turns the event loop takes meanwhile.

So "nothing happened for N turns of the loop" alone does not say the stand-in and its
clients are done. Linux only: /proc/self, TCP_INFO, SIOCINQ/SIOCOUTQ.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import socket
import stat
import termios
import threading
from pathlib import Path

# TCP states of include/net/tcp_states.h that only last while the kernel works:
# SYN_SENT, SYN_RECV, FIN_WAIT1, LAST_ACK, CLOSING.
TRANSIENT_STATES = frozenset({2, 3, 4, 9, 11})
SYN_SENT, LISTEN = 2, 10
SIOCOUTQ = termios.TIOCOUTQ  # bytes sent and not yet acknowledged (the same number on Linux)
TCP_INFO_UNACKED = 24  # struct tcp_info: 8 one-byte fields, then rto, ato, snd_mss, rcv_mss


def in_flight(port: int) -> list[str]:
    """What is under way (`sockets_in_flight`, `runnable_threads`); empty when nothing."""
    return sockets_in_flight(port) + runnable_threads()


def runnable_threads() -> list[str]:
    """This process's threads, other than the caller's and io_uring's own, that are running
    or waiting for a CPU (state R), as "tid name"."""
    found = []
    for tid in os.listdir("/proc/self/task"):
        if int(tid) == threading.get_native_id():
            continue
        try:
            name = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
            stat_line = Path(f"/proc/self/task/{tid}/stat").read_text()
        except OSError:  # ended meanwhile
            continue
        if stat_line.rsplit(")", 1)[1].split()[0] == "R" and not name.startswith("iou-"):
            found.append(f"{tid} {name}")
    return found


def sockets_in_flight(port: int) -> list[str]:
    """This process's TCP sockets on 127.0.0.1:`port` (either end) with work under way: a
    transient state (a socket still connecting counts whatever its peer), a connection
    waiting to be accepted, or bytes queued (unread, or sent and not acknowledged). Each is
    described as "fd state rx tx"; empty when the kernel holds nothing for the port."""
    busy = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            found = _look(fd, port)
        except OSError:  # closed meanwhile, or not a socket we can ask
            continue
        if found:
            busy.append(found)
    return busy


def _look(fd: int, port: int) -> str:
    sock = socket.socket(fileno=fd)  # borrowed: detached below, never closed here
    try:
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN) != socket.AF_INET:
            return ""
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) != socket.SOCK_STREAM:
            return ""
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        state = info[0]
        if state == SYN_SENT:  # its peer is not known until it is connected
            return f"{fd} connecting"
        if not _on(sock, port):
            return ""
        if state in TRANSIENT_STATES:
            return f"{fd} state={state}"
        if state == LISTEN:
            waiting = int.from_bytes(info[TCP_INFO_UNACKED : TCP_INFO_UNACKED + 4], "little")
            return f"{fd} listen backlog={waiting}" if waiting else ""
        rx, tx = _queued(fd, termios.FIONREAD), _queued(fd, SIOCOUTQ)
        return f"{fd} state={state} rx={rx} tx={tx}" if rx or tx else ""
    finally:
        sock.detach()


def _on(sock: socket.socket, port: int) -> bool:
    ends = [sock.getsockname()]
    with contextlib.suppress(OSError):  # not connected
        ends.append(sock.getpeername())
    return ("127.0.0.1", port) in ends


def _queued(fd: int, request: int) -> int:
    count = array.array("i", [0])
    fcntl.ioctl(fd, request, count, True)
    return count[0]
