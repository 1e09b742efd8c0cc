"""A second Asterisk, as simple as can be (blocking sockets, one call at a time), for
bench/agi_load.py: while the load runs, it places calls every 100 ms and prints the
turnaround of each command it sees, so the load generator's own delays are out of the
picture.  Started by ``XVBD_BENCH_PROBE=bench/probe.py`` (full mode).

    python bench/probe.py PORT CALLS
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import agi_load
from measure import percentile

port = int(sys.argv[1])
n = int(sys.argv[2])
env = agi_load.env_block("ivr", (agi_load.VOICE_NUMBER, "127.0.0.1"), 1)
lat: dict[bytes, list[float]] = {}


def call() -> None:
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")
    keys = list(agi_load.MENU_KEYS)
    t = time.perf_counter()
    s.sendall(env)
    while True:
        line = f.readline()
        if not line:
            break
        lat.setdefault(line[:10], []).append(time.perf_counter() - t)
        v = line[:8]
        if v == b"STREAM F":
            menu = line.rstrip().endswith(b'"0123456789*#"') and keys
            r = (b"200 result=%d endpos=4000\n" % ord(keys.pop(0)) if menu
                 else b"200 result=0 endpos=16000\n")
        elif v == b"GET DATA":
            code = agi_load.ACCESS_CODE if b"agent-user" in line else agi_load.PIN
            r = b"200 result=" + code.encode() + b"\n"
        elif v == b"RECORD F":
            r = b"200 result=35 (dtmf) endpos=40000\n"
        elif v == b"HANGUP":
            r = b"200 result=1\nHANGUP\n"
        elif v == b"SET VARI":
            r = b"200 result=1\n"
        else:
            r = b"200 result=0\n"
        t = time.perf_counter()
        s.sendall(r)
    s.close()


for _ in range(n):
    call()
    time.sleep(0.1)
everything = [v for values in lat.values() for v in values]
for verb, values in sorted(lat.items()):
    print(f"probe {verb.decode().strip():10} n={len(values):4} "
          f"p50={percentile(values, 0.5) * 1000:.2f} "
          f"p99={percentile(values, 0.99) * 1000:.2f} max={max(values) * 1000:.2f} ms")
print(f"probe all commands n={len(everything)} p50={percentile(everything, 0.5) * 1000:.2f} "
      f"p99={percentile(everything, 0.99) * 1000:.2f} ms")
