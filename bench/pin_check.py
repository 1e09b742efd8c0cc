"""What a phone PIN check costs now that PINs are scrypt hashes (``passwords.PIN_N``).

    python bench/pin_check.py [--checks 200] [--threads 10]

Prints the milliseconds of one check (p50/p99 of ``--checks`` checks in a row), the memory
each takes, and how many checks a second the reactor's thread pool (``--threads``, Twisted's
default is 10) gets through on this machine when every thread is busy: the most PIN entries
a second one xvbd can take.  The reactor thread only waits for the answer; a web password
(``2**15``) is measured too, for comparison.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xvbd.passwords import PIN_N, hash_password, hash_pin, verify_password


def one_by_one(stored: str, checks: int) -> list[float]:
    took = []
    for _ in range(checks):
        began = time.perf_counter()
        assert verify_password("4321", stored)
        took.append((time.perf_counter() - began) * 1000)
    return took


def busy_pool(stored: str, checks: int, threads: int) -> float:
    began = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        assert all(pool.map(lambda _: verify_password("4321", stored), range(checks)))
    return checks / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checks", type=int, default=200)
    parser.add_argument("--threads", type=int, default=10)
    args = parser.parse_args()
    for label, stored in (("PIN", hash_pin("4321")),
                          ("web password", hash_password("4321"))):
        n = int(stored.split("$")[1])
        took = sorted(one_by_one(stored, args.checks if label == "PIN" else 20))
        p99 = took[min(len(took) - 1, int(len(took) * 0.99))]
        rate = busy_pool(stored, args.checks if label == "PIN" else 40, args.threads)
        print(f"{label:13} scrypt N=2**{n.bit_length() - 1} r=8 p=1 ({128 * 8 * n >> 20} MiB): "
              f"one check p50 {statistics.median(took):.1f} ms, p99 {p99:.1f} ms; "
              f"{rate:.0f} checks/s on {args.threads} threads")
    assert PIN_N == int(hash_pin("1").split("$")[1])


if __name__ == "__main__":
    main()
