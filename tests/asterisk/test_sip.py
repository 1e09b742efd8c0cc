"""A SIP call by domain through the real Asterisk and PJSIP: SIPp calls the operator's
``fromsip`` entry with ``To: sip:10001@613.comp.ru`` (``[COMMON] SIP_DOMAINS = comp.ru``):
xvbd serves the demo tenant, with the caller's address and From domain from PJSIP."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.asterisk.pbx import free_port
from tests.asterisk.rig import Rig

SCENARIO = Path(__file__).parent / "sipp" / "call_by_domain.xml"
CALLER_ENDPOINT = """
[sipcaller]
type = endpoint
context = from-provider
disallow = all
allow = ulaw
dtmf_mode = rfc4733
direct_media = no
"""


def sip_call(rig: Rig, to_uri: str, digit: str, *, wait_ms: int, listen_ms: int,
             tmp: Path) -> subprocess.CompletedProcess[str]:
    sipp = shutil.which("sipp")
    if sipp is None:
        pytest.fail("SIPp is missing: bash .ci/services installs Debian's sip-tester")
    scenario = tmp / "call.xml"
    scenario.write_text(SCENARIO.read_text().replace('"WAIT_MS"', f'"{wait_ms}"')
                        .replace('"LISTEN_MS"', f'"{listen_ms}"')
                        .replace("_DIGIT.pcap", f"_{digit}.pcap"))
    return subprocess.run(
        [sipp, f"127.0.0.1:{rig.asterisk.sip_port}", "-sf", str(scenario), "-m", "1",
         "-i", "127.0.0.1", "-p", str(free_port()), "-mi", "127.0.0.1",
         "-mp", str(free_port()), "-key", "to_uri", to_uri,
         "-key", "from_domain", "client.example.org", "-nostdin",
         "-timeout", "60s", "-trace_err"],
        cwd=tmp, capture_output=True, text=True, timeout=90)


def test_a_sip_call_by_domain_reaches_the_tenant(rig: Rig) -> None:
    rig.asterisk.extra_pjsip = CALLER_ENDPOINT
    rig.xvb_common = "PSTN_GW = 10.9.9.9\nSIP_DOMAINS = comp.ru"
    rig.start(before=lambda r: r.query("UPDATE users SET pin_hash = '' WHERE id = 1"))
    started = time.monotonic()
    done = sip_call(rig, "sip:10001@613.comp.ru", "1", wait_ms=2500, listen_ms=4000,
                    tmp=rig.tmp)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert time.monotonic() - started >= 6
    summary = rig.wait_cdr("TYPE=XVB")[0]
    assert "ACCESS_CODE=10001" in summary and "SUBSCR_ID=1" in summary, summary
    # Not from the PSTN gateway: the caller id carries the From domain.
    assert "CALLER_ID=sipcaller@client.example.org" in summary, summary
    log = rig.asterisk.full_log()
    request = next(line for line in log.splitlines() if "agi_request:" in line)
    assert "/sip" in request, request
    args = [line.split("agi_arg_", 1)[1] for line in log.splitlines() if "agi_arg_" in line]
    assert args[0] == "1: <sip:10001@613.comp.ru>", args
    assert args[1].startswith("2: 127.0.0.1:"), args
    assert args[2] == "3: client.example.org", args
    voicemail = rig.wait_cdr("TYPE=VoiceMail")[0]  # the RFC 4733 "1" chose the voicemail
    assert "EXT_NUMBER=1" in voicemail, voicemail


def test_a_sip_call_to_an_extension_by_its_number(rig: Rig) -> None:
    rig.asterisk.extra_pjsip = CALLER_ENDPOINT
    rig.xvb_common = "SIP_DOMAINS = comp.ru"
    rig.start(before=lambda r: r.query("UPDATE users SET pin_hash = '' WHERE id = 1"))
    done = sip_call(rig, "sip:9@10001.613.comp.ru", "3", wait_ms=1500, listen_ms=7000,
                    tmp=rig.tmp)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rig.wait_cdr("TYPE=XVB")
    lines = rig.cdr_lines()
    assert any("EXT_NUMBER=9*3" in line for line in lines), "\n".join(lines)
    assert not any("EXT_NUMBER=0," in line for line in lines), "the call began at 9"
