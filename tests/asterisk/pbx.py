"""A private, real Asterisk for the tests: its own configuration directory, ports, spool,
database and logs under the test's temporary directory, started with ``asterisk -C``.

The configuration is what the README tells an operator to write: the project's shipped
``etc/asterisk/`` files (the dialplan ``#include``d, the ``[xvb]`` manager user copied, the
realtime samples) plus the operator's own few lines (an inbound context, ``XVB_AGI``).  On
top of that the tests add what stands for the outside world: a caller context on the
Local channel's first half, a gateway context that plays the called phones, SIP endpoints
for SIPp.

The binary is ``XVBD_ASTERISK``, else the one ``../shared/asterisk/build.sh`` installs, else
``asterisk`` on the PATH.  Without one the tier is skipped with that reason, except under
``CI=true``, where a missing Asterisk fails the run.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "etc" / "asterisk"
DEFAULT_BINARY = Path("/opt/asterisk-22.10.1/sbin/asterisk")

#: The modules the product needs, and those the tests' outside world needs; nothing else
#: loads, so the log holds only what these say.
MODULES = """
res_speech res_agi res_musiconhold res_timing_timerfd res_rtp_asterisk res_sorcery_config
res_sorcery_memory res_sorcery_astdb res_sorcery_realtime res_config_sqlite3
res_config_mysql res_odbc res_odbc_transaction res_config_odbc res_realtime func_realtime
pbx_config app_playback app_record app_dial app_queue app_confbridge app_amd app_disa
app_stack app_exec app_verbose app_senddtmf app_read app_mixmonitor app_echo app_milliwatt
app_waitforsilence app_sayunixtime app_system app_page app_originate app_db app_while
app_playtones app_softhangup app_userevent app_cdr app_chanspy
bridge_simple bridge_softmix bridge_holding bridge_builtin_features bridge_native_rtp
chan_pjsip chan_bridge_media res_pjproject res_pjsip res_pjsip_session res_pjsip_sdp_rtp
res_pjsip_authenticator_digest res_pjsip_endpoint_identifier_user
res_pjsip_endpoint_identifier_ip res_pjsip_registrar res_pjsip_header_funcs
res_pjsip_caller_id res_pjsip_dtmf_info res_pjsip_nat res_pjsip_rfc3326 res_pjsip_pubsub
res_pjsip_outbound_authenticator_digest res_pjsip_acl func_pjsip_endpoint
func_pjsip_contact func_pjsip_aor
codec_ulaw codec_alaw codec_gsm codec_a_mu codec_resample codec_g722
format_gsm format_wav format_wav_gsm format_pcm format_sln
func_callerid func_channel func_cut func_logic func_strings func_global func_math
func_db func_uri func_timeout func_hangupcause func_sprintf func_env
func_shell func_rand func_dialplan func_cdr func_groupcount func_devstate
res_parking res_fax res_fax_spandsp
""".split()

#: Asterisk's own words that are harmless here and say nothing about the shipped files.
BENIGN = (
    # No console or remote console on a terminal: Asterisk says so when run by a test.
    re.compile(r"asterisk\.c: .*(TERM|tty)"),
)


#: The operator's gateway, as the shipped dialout context names it (``PJSIP/…@gateway``),
#: here a SIP trunk from this Asterisk to itself: the INVITE comes back in as endpoint
#: ``xvbgw`` (its From user) into the tests' ``xvbt-phones``, where the called phones live.
PHONE_NETWORK = """
[gateway]
type = endpoint
context = xvbt-nowhere
disallow = all
allow = ulaw
aors = gateway
from_user = xvbgw
dtmf_mode = rfc4733
direct_media = no

[gateway]
type = aor
contact = sip:127.0.0.1:{port}

[xvbgw]
type = endpoint
context = xvbt-phones
disallow = all
allow = ulaw
dtmf_mode = rfc4733
direct_media = no
"""


class NoAsterisk(Exception):
    """No Asterisk binary: the tier cannot run (the message says how to get one)."""


def find_binary() -> Path:
    """The Asterisk to test against, or :class:`NoAsterisk` saying how to get one."""
    named = os.environ.get("XVBD_ASTERISK")
    if named:
        path = Path(named)
        if not os.access(path, os.X_OK):
            raise NoAsterisk(f"XVBD_ASTERISK={named} is not an executable file")
        return path
    if os.access(DEFAULT_BINARY, os.X_OK):
        return DEFAULT_BINARY
    found = shutil.which("asterisk")
    if found:
        return Path(found)
    raise NoAsterisk("no Asterisk binary: run `bash ../shared/asterisk/build.sh` (it installs "
                     f"{DEFAULT_BINARY}) or set XVBD_ASTERISK=/path/to/asterisk")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_range(size: int) -> int:
    """The first of ``size`` consecutive UDP ports that are free now (RTP)."""
    for _ in range(50):
        start = free_port(socket.SOCK_DGRAM) & ~1
        taken = []
        try:
            for port in range(start, start + size):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                taken.append(sock)
                sock.bind(("127.0.0.1", port))
            return start
        except OSError:
            continue
        finally:
            for sock in taken:
                sock.close()
    raise RuntimeError("no free range of UDP ports for RTP")


class Asterisk:
    """One Asterisk process with a configuration directory of its own."""

    AMI_USER = "xvb"

    def __init__(self, workdir: Path, *, agi_port: int, binary: Path | None = None) -> None:
        self.binary = binary or find_binary()
        self.prefix = self.binary.resolve().parents[1]
        self.dir = workdir
        self.etc = workdir / "etc"
        self.spool = workdir / "spool"
        self.logs = workdir / "log"
        self.sounds = workdir / "data" / "sounds"
        self.agi_port = agi_port
        self.ami_port = free_port()
        self.sip_port = free_port(socket.SOCK_DGRAM)
        self.rtp_start = free_port_range(200)
        self.ami_secret = "test-" + os.urandom(8).hex()
        self.proc: subprocess.Popen[bytes] | None = None
        self._console: object = None
        self.extra_dialplan = ""
        self.extra_pjsip = ""
        self.extra_files: dict[str, str] = {}
        self.globals: dict[str, str] = {}
        #: Run as this system user and group (``asterisk -U -G``), as operators do.
        self.run_as: tuple[str, str] | None = None

    # ------------------------------------------------------------------ configuration

    @property
    def conf(self) -> Path:
        return self.etc / "asterisk.conf"

    def write_config(self) -> None:
        for directory in (self.etc, self.spool, self.logs, self.dir / "run", self.dir / "db",
                          self.dir / "keys", self.sounds, self.dir / "data" / "moh"):
            directory.mkdir(parents=True, exist_ok=True)
        data = self.prefix / "var" / "lib" / "asterisk"
        for name in ("en", "ru"):
            link = self.sounds / name
            if not link.exists():
                link.symlink_to(data / "sounds" / name)
        moh = self.dir / "data" / "moh"
        for item in (data / "moh").iterdir() if (data / "moh").is_dir() else ():
            if not (moh / item.name).exists():
                (moh / item.name).symlink_to(item)
        for item in ("documentation", "static-http", "keys"):
            if not (self.dir / "data" / item).exists() and (data / item).exists():
                (self.dir / "data" / item).symlink_to(data / item)
        self.etc.joinpath("asterisk.conf").write_text(f"""[directories]
astetcdir => {self.etc}
astmoddir => {self.prefix / 'lib' / 'asterisk' / 'modules'}
astvarlibdir => {self.dir / 'data'}
astdatadir => {self.dir / 'data'}
astdbdir => {self.dir / 'db'}
astkeydir => {self.dir / 'keys'}
astspooldir => {self.spool}
astrundir => {self.dir / 'run'}
astlogdir => {self.logs}
astsbindir => {self.binary.parent}
[options]
verbose = 3
debug = 0
nofork = yes
documentation_language = en_US
hideconnect = yes
""")
        modules = "\n".join(f"load => {name}.so" for name in MODULES)
        self._write("modules.conf", f"[modules]\nautoload = no\n{modules}\n")
        self._write("logger.conf", "[general]\ndateformat = %F %T.%3q\n[logfiles]\n"
                                   "full => notice,warning,error,verbose(4),dtmf\n"
                                   "messages => warning,error\n")
        self._write("rtp.conf", f"[general]\nrtpstart = {self.rtp_start}\n"
                                f"rtpend = {self.rtp_start + 199}\n")
        self._write("manager.conf", self._manager_conf())
        self._write("pjsip.conf", self._pjsip_conf())
        self._write("extensions.conf", self._extensions_conf())
        self._write("musiconhold.conf", "[general]\n[default]\nmode = files\n"
                                        f"directory = {moh}\n")
        self._write("confbridge.conf", "[general]\n")
        self._write("queues.conf", "[general]\n")
        self._write("features.conf", "[general]\n")
        self._write("res_parking.conf", "[general]\n[default]\nparkext => 700\n"
                                        "parkpos => 701-720\ncontext => parkedcalls\n")
        self._write("ccss.conf", "[general]\n")
        self._write("amd.conf", "[general]\n")
        self._write("pjproject.conf", "")
        self._write("cdr.conf", "[general]\nenable = no\n")
        self._write("cel.conf", "[general]\nenable = no\n")
        self._write("udptl.conf", "[general]\n")
        self._write("acl.conf", "")
        self._write("indications.conf", "[general]\ncountry = us\n[us]\n"
                                        "description = United States\n"
                                        "ring = 440+480/2000,0/4000\nbusy = 480+620/500,0/500\n"
                                        "congestion = 480+620/250,0/250\n"
                                        "dial = 350+440\n")
        for name, text in self.extra_files.items():
            self._write(name, text)

    def _write(self, name: str, text: str) -> None:
        (self.etc / name).write_text(text)

    def _manager_conf(self) -> str:
        """The shipped ``[xvb]`` user, copied as the README says, on this Asterisk's port."""
        shipped = (SHIPPED / "manager.conf").read_text()
        user = shipped[shipped.index("[xvb]"):]
        user = user.replace("change-me-to-a-long-random-secret", self.ami_secret)
        tester = (f"[tester]\nsecret = {self.ami_secret}\ndeny = 0.0.0.0/0.0.0.0\n"
                  "permit = 127.0.0.1/255.255.255.255\nread = all\nwrite = all\n")
        return (f"[general]\nenabled = yes\nport = {self.ami_port}\nbindaddr = 127.0.0.1\n"
                f"\n{user}\n{tester}")

    def _pjsip_conf(self) -> str:
        return (f"[transport-udp]\ntype = transport\nprotocol = udp\n"
                f"bind = 127.0.0.1:{self.sip_port}\n\n{PHONE_NETWORK.format(port=self.sip_port)}"
                f"\n{self.extra_pjsip}")

    def _extensions_conf(self) -> str:
        variables = {"XVB_AGI": f"agi://127.0.0.1:{self.agi_port}", **self.globals}
        globals_ = "\n".join(f"{k}={v}" for k, v in variables.items())
        return f"""[general]
static = yes
writeprotect = yes

#include "{SHIPPED / 'extensions.conf'}"

[globals]
{globals_}

; The operator's inbound context, as the README writes it.
[from-provider]
exten => 613,1,Goto(xvb-main-fagi,613,1)
exten => 100,1,Goto(xvb-main,100,1)
exten => fromsip,1,Goto(xvb-main-fagi-sip,1,1)
exten => _X.,1,Goto(xvb-main,${{EXTEN}},1)

{self.extra_dialplan}
"""

    # ------------------------------------------------------------------ the process

    def start(self, timeout: float = 30.0) -> Asterisk:
        self.write_config()
        console = (self.dir / "console.log").open("wb")
        self._console = console
        command = [str(self.binary), "-C", str(self.conf), "-f", "-n", "-q"]
        if self.run_as is not None:
            user, group = self.run_as
            command += ["-U", user, "-G", group]
            for path in (self.dir, *self.dir.rglob("*")):
                if not path.is_symlink():
                    shutil.chown(path, user, group)
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"Asterisk exited with {self.proc.returncode}:\n"
                                     f"{self.console_output()}")
            if (self.dir / "run" / "asterisk.ctl").exists():
                done = self.cli("core waitfullybooted", timeout=timeout, check=False)
                if done.returncode == 0 and "fully booted" in done.stdout:
                    self.cli("agi set debug on")  # every AGI line into the full log
                    return self
            time.sleep(0.05)
        raise AssertionError(f"Asterisk did not boot within {timeout} s:\n"
                             f"{self.console_output()}")

    def cli(self, command: str, *, timeout: float = 20.0,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """One CLI command through the remote console (``asterisk -rx``)."""
        done = subprocess.run([str(self.binary), "-C", str(self.conf), "-rx", command],
                              capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"asterisk -rx {command!r}: {done.returncode}\n"
                                 f"{done.stdout}{done.stderr}")
        return done

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.cli("core stop now", check=False, timeout=timeout)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        finally:
            if self._console is not None:
                self._console.close()  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ what it said

    def console_output(self) -> str:
        path = self.dir / "console.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def full_log(self) -> str:
        path = self.logs / "full"
        return path.read_text(errors="replace") if path.exists() else ""

    def problems(self, allowed: Iterable[re.Pattern[str]] = ()) -> list[str]:
        """Every WARNING and ERROR Asterisk logged, but the ``allowed`` ones."""
        path = self.logs / "messages"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        patterns = (*BENIGN, *allowed)
        return [line for line in lines if ("WARNING" in line or "ERROR" in line)
                and not any(p.search(line) for p in patterns)]
