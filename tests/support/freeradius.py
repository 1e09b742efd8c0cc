"""A real FreeRADIUS (Debian's ``freeradius``) for tests: started on a free loopback port
with a configuration of our own and a ``detail`` accounting log, stopped afterwards."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

SECRET = "testing123"

CONFIG = """
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = {dir}/log
raddbdir = {dir}
radacctdir = {dir}/acct
name = freeradius
confdir = ${{raddbdir}}
modconfdir = ${{confdir}}/mods-config
run_dir = {dir}/run
db_dir = ${{raddbdir}}
libdir = /usr/lib/freeradius
pidfile = ${{run_dir}}/${{name}}.pid
dictdir = /usr/share/freeradius
max_request_time = 30
cleanup_delay = 5
max_requests = 1024
hostname_lookups = no
log {{
    destination = stdout
    colourise = no
}}
security {{
    allow_core_dumps = no
    max_attributes = 200
    reject_delay = 0
    status_server = no
}}
client localhost {{
    ipaddr = 127.0.0.1
    secret = {secret}
}}
thread pool {{
    start_servers = 1
    max_servers = 1  # one thread: the detail file in the order the packets came
    min_spare_servers = 1
    max_spare_servers = 1
    max_requests_per_server = 0
}}
modules {{
    detail {{
        filename = ${{radacctdir}}/detail
        permissions = 0600
        header = "%t"
    }}
    always ok {{
        rcode = ok
    }}
    expr {{
    }}
    files {{
        filename = ${{confdir}}/users
    }}
    pap {{
    }}
}}
server default {{
    listen {{
        type = acct
        ipaddr = 127.0.0.1
        port = {port}
    }}
    listen {{
        type = auth
        ipaddr = 127.0.0.1
        port = {auth_port}
    }}
    preacct {{
        update request {{
            &Client-IP-Address := "%{{Packet-Src-IP-Address}}"
            &Acct-Unique-Session-Id := "%{{md5:%{{User-Name}},%{{Acct-Session-Id}},%{{NAS-Identifier}}}}"
        }}
    }}
    accounting {{
        detail
        ok
    }}
    authorize {{
        files
    }}
    authenticate {{
        Auth-Type PAP {{
            pap
        }}
    }}
    post-auth {{
        ok
    }}
}}
"""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FreeRadius:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        for sub in ("log", "acct", "run"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        self.port = free_udp_port()
        self.auth_port = free_udp_port()
        (directory / "radiusd.conf").write_text(CONFIG.format(
            dir=directory, port=self.port, auth_port=self.auth_port, secret=SECRET))
        # External billing: 10001 may call for two minutes, 10002 without limit, no one else.
        (directory / "users").write_text(
            '10001 Auth-Type := Accept\n\tSession-Timeout = 120\n\n'
            '10002 Auth-Type := Accept\n\n'
            'DEFAULT Auth-Type := Reject\n\tReply-Message = "no credit"\n')
        self.output = directory / "freeradius.out"
        self._out = self.output.open("wb")
        self.proc = subprocess.Popen(["freeradius", "-f", "-d", str(directory), "-l", "stdout"],
                                     stdout=self._out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while b"Ready to process requests" not in self.output.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("FreeRADIUS did not start:\n" + self.output.read_text())
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self._out.close()

    def records(self) -> list[list[tuple[str, str]]]:
        """The detail log: one list of (attribute, value) per packet, in order."""
        path = self.dir / "acct" / "detail"
        if not path.exists():
            return []
        out: list[list[tuple[str, str]]] = []
        for block in path.read_text().strip().split("\n\n"):
            lines = block.splitlines()[1:]  # the first line is the time header
            out.append([tuple(part.strip() for part in line.split(" = ", 1))  # type: ignore[misc]
                        for line in lines if " = " in line])
        return out
