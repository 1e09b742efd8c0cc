"""xvb.conf: every key parsed, every kind of bad value refused with a message that names the
file, the line, the section, the key, the value and what is accepted."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from xvbd.config import (
    SECTIONS,
    ConfigError,
    HostPort,
    RedisAddress,
    default_settings,
    load_settings,
    parse_settings,
    render_settings,
)

SAMPLE = Path(__file__).resolve().parent.parent / "etc" / "xvb.conf"


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_settings(text, "test.conf")
    return info.value.problems


def test_sample_config_is_clean_and_documents_every_key() -> None:
    settings = load_settings(SAMPLE)
    assert settings.warnings == ()
    lines = SAMPLE.read_text().splitlines()
    section = ""
    seen: dict[tuple[str, str], int] = {}
    for number, line in enumerate(lines):
        if line.startswith("["):
            section = line.strip("[] ")
        elif line and not line.startswith("#"):
            seen[(section, line.split("=")[0].strip().upper())] = number
    for sec in SECTIONS:
        for key in sec.keys:
            number = seen.get((sec.name, key.name.upper()))
            assert number is not None, f"[{sec.name}] {key.name} is missing from the sample"
            assert lines[number - 1].startswith("#"), f"[{sec.name}] {key.name} has no comment"


def test_sample_values_are_the_defaults() -> None:
    assert render_settings(load_settings(SAMPLE)) == render_settings(default_settings())


def test_every_key_is_parsed() -> None:
    text = r"""
[COMMON]
PSTN_GW = 10.1.1.1, 10.2.0.0/16
SIP_DOMAINS = comp.ru, SomeComp.com
JOURNAL_STORE = 0
CDR_STORE = 30
MEM_CACHED = 127.0.0.1:6379/2
MEM_CACHED_SHARED = redis://10.0.0.5:6380/1, 10.0.0.6
SERVER_ID = FCC-NN
USE_BILLING = -1
[ASTERISK]
RxFax_APP = ReceiveFax,f
TxFax_APP = SendFax
VERSION = 1.8
AMI_HOST = 10.1.1.2
AMI_PORT = 5039
AMI_USERNAME = xvb
AMI_SECRET = sec4xvb
AMI_AUTH = plain
[FILE]
ast_sound_format = g722
[CDR]
SEND_TO = FILE, UDP
FILE = /tmp/x.cdr
UDP_SERVER = 127.0.0.1:50000, collector:50001
[CGI]
SERVER = https://xvb.example.com/
TRUSTED_4_UI_DF = 127\.0\.0\.1, 10\.1\.11\..*
TRUSTED_4_AI_DF = *
[EMAIL]
SERVER = mail.example.com
FROM = '"== Virtual PBX ==" <no-reply@virtualpbx.com>'
SUBJ = New message
FORKS = 10
[DEBUG]
LEVEL = 31
FULL = 2, 12
SEND_TO = FILE,SYSLOG
FILE = /tmp/xvb.log
HOST = 10.9.9.9:5514
[CALLBLAST]
CHECK_AMD = 1
MAX_CALLS = 150
LOAD_THRESHOLD = 0.90
SLEEP = 0.5
[SIP]
REGISTRAR_IP = 10.1.1.9
REGISTRAR_NAME = kamailio
REGISTRAR_TYPE = ser
UAC_TYPE = SER
UAC_GW_IN = 127.0.0.1
UAC_GW_OUT = 10.1.1.1,192.168.6.1
[RADIUS]
ACCT_HOST = 127.0.0.1:12345
ACCT_SECRET = testing123
ACCT_SEND_EVENTS = 1
ACCT_TIMEOUT = 2.5
ACCT_RETRIES = 5
[GEARMAN]
HOST = 127.0.0.1:4730
FUNC = radius_acct, notify_email
THREADS = 8
[DB]
URL = mysql://xvb:p%40ss@db.example.com:3307/xvb
POOL_MAX = 20
CONNECT_TIMEOUT = 3
REPORTS_URL = mysql://report:r@db.example.com:3307/xvb
[AGI]
LISTEN = 4574
SHUTDOWN_GRACE = 0
ENV_TIMEOUT = 5
[WEB]
LISTEN = tcp:8443:interface=0.0.0.0
SESSION_TIMEOUT = 600
[PATH]
SOUND_DIR = /opt/sounds
MEDIA_DIR = /srv/media
TMP_DIR = /tmp/xvb
[ATTEMPTS]
IVR_INPUT = 4
PASSWORD = 2
ACCESS_CODE = 5
[TIMEOUT]
DIGIT = 5000
DIALOUT = 60
"""
    s = parse_settings(text, "full.conf")
    assert s.warnings == ()
    assert s.common.pstn_gw == ("10.1.1.1", "10.2.0.0/16")
    assert s.common.sip_domains == ("comp.ru", "somecomp.com")
    assert (s.common.journal_store, s.common.cdr_store) == (0, 30)
    assert s.common.mem_cached == (RedisAddress("127.0.0.1", 6379, 2),)
    assert s.common.mem_cached_shared == (RedisAddress("10.0.0.5", 6380, 1),
                                          RedisAddress("10.0.0.6", 6379, 0))
    assert (s.common.server_id, s.common.use_billing) == ("FCC-NN", -1)
    a = s.asterisk
    assert (a.rxfax_app, a.txfax_app, a.version) == ("ReceiveFax,f", "SendFax", "1.8")
    assert (a.ami_host, a.ami_port, a.ami_username, a.ami_secret, a.ami_auth) == (
        "10.1.1.2", 5039, "xvb", "sec4xvb", "plain")
    assert s.file.ast_sound_format == "g722"
    assert s.cdr.send_to == {"FILE", "UDP"}
    assert str(s.cdr.file) == "/tmp/x.cdr"
    assert s.cdr.udp_server == (HostPort("127.0.0.1", 50000), HostPort("collector", 50001))
    assert s.cgi.server == "https://xvb.example.com"
    assert s.cgi.trusts(s.cgi.trusted_4_ui_df, "10.1.11.7")
    assert s.cgi.trusts(s.cgi.trusted_4_ui_df, "127.0.0.1")
    assert not s.cgi.trusts(s.cgi.trusted_4_ui_df, "127.0.0.10")
    assert not s.cgi.trusts(s.cgi.trusted_4_ui_df, "10.1.12.7")
    assert s.cgi.trusts(s.cgi.trusted_4_ai_df, "8.8.8.8")
    e = s.email
    assert (e.server, e.from_, e.subject, e.forks) == (
        HostPort("mail.example.com", 25), '"== Virtual PBX ==" <no-reply@virtualpbx.com>',
        "New message", 10)
    d = s.debug
    assert (d.level, d.full, d.send_to, str(d.file), d.host) == (
        31, ("2", "12"), {"FILE", "SYSLOG"}, "/tmp/xvb.log", "10.9.9.9:5514")
    c = s.callblast
    assert (c.check_amd, c.max_calls, c.load_threshold, c.sleep) == (True, 150, 0.9, 0.5)
    p = s.sip
    assert (p.registrar_ip, p.registrar_name, p.registrar_type, p.uac_type) == (
        ("10.1.1.9",), "kamailio", "SER", "SER")
    assert (p.uac_gw_in, p.uac_gw_out) == (("127.0.0.1",), ("10.1.1.1", "192.168.6.1"))
    r = s.radius
    assert (r.acct_host, r.acct_secret, r.acct_send_events, r.acct_timeout, r.acct_retries) == (
        HostPort("127.0.0.1", 12345), "testing123", True, 2.5, 5)
    g = s.gearman
    assert (g.host, g.func, g.threads) == ("127.0.0.1:4730", {"radius_acct", "notify_email"}, 8)
    db = s.db
    assert (db.url.backend, db.url.host, db.url.port, db.url.user, db.url.password,
            db.url.name) == ("mysql", "db.example.com", 3307, "xvb", "p@ss", "xvb")
    assert "p@ss" not in str(db.url), "the password never reaches a log line"
    assert (db.pool_max, db.connect_timeout, db.reports_url.user) == (20, 3, "report")
    assert (s.agi.listen, s.agi.shutdown_grace, s.agi.env_timeout) == ("tcp:4574", 0, 5)
    assert (s.web.listen, s.web.session_timeout) == ("tcp:8443:interface=0.0.0.0", 600)
    assert (str(s.path.sound_dir), str(s.path.media_dir), str(s.path.tmp_dir)) == (
        "/opt/sounds", "/srv/media", "/tmp/xvb")
    assert (s.attempts.ivr_input, s.attempts.password, s.attempts.access_code) == (4, 2, 5)
    assert (s.timeout.digit, s.timeout.dialout) == (5000, 60)
    assert "testing123" not in render_settings(s) and "sec4xvb" not in render_settings(s)


def test_defaults_run_alone_on_one_machine() -> None:
    s = default_settings()
    assert s.db.url.backend == "sqlite"
    assert s.common.mem_cached == s.common.mem_cached_shared == ()
    assert s.radius.acct_host is None and s.asterisk.ami_host == ""
    assert s.agi.listen == "tcp:4573:interface=127.0.0.1"


@pytest.mark.parametrize(("section", "key", "value", "message"), [
    ("CALLBLAST", "SLEEP", "0", "[CALLBLAST] SLEEP must be > 0, got 0"),
    ("CALLBLAST", "SLEEP", "fast", "[CALLBLAST] SLEEP must be a number, got 'fast'"),
    ("CALLBLAST", "SLEEP", "nan", "[CALLBLAST] SLEEP must be a finite number, got 'nan'"),
    ("CALLBLAST", "LOAD_THRESHOLD", "1.5", "[CALLBLAST] LOAD_THRESHOLD must be <= 1, got 1.5"),
    ("CALLBLAST", "MAX_CALLS", "0", "[CALLBLAST] MAX_CALLS must be > 0, got 0"),
    ("CALLBLAST", "CHECK_AMD", "maybe",
     "[CALLBLAST] CHECK_AMD: 'maybe' is not a flag; use 1 or 0"),
    ("CDR", "SEND_TO", "FILE,FTP", "[CDR] SEND_TO: unknown sink 'FTP'; use FILE, UDP, DB or NONE"),
    ("CDR", "SEND_TO", "NONE,FILE", "[CDR] SEND_TO: NONE cannot be combined with other values"),
    ("CDR", "UDP_SERVER", "127.0.0.1", "[CDR] UDP_SERVER: '127.0.0.1' needs a port"),
    ("CDR", "UDP_SERVER", "127.0.0.1:99999", "[CDR] UDP_SERVER: '127.0.0.1:99999' has no valid port"),
    ("COMMON", "USE_BILLING", "2", "[COMMON] USE_BILLING must be 1, 0 or -1, got '2'"),
    ("COMMON", "CDR_STORE", "-1", "[COMMON] CDR_STORE must be >= 0, got -1"),
    ("COMMON", "JOURNAL_STORE", "1e3", "[COMMON] JOURNAL_STORE must be a whole number, got '1e3'"),
    ("COMMON", "SERVER_ID", "my node", "[COMMON] SERVER_ID must be 1-64 letters"),
    ("COMMON", "PSTN_GW", "10.1.1.300", "[COMMON] PSTN_GW: '10.1.1.300' is not an IP address"),
    ("COMMON", "SIP_DOMAINS", "comp..ru", "[COMMON] SIP_DOMAINS: 'comp..ru' is not a domain name"),
    ("COMMON", "MEM_CACHED", "redis://h:1/x", "[COMMON] MEM_CACHED: 'redis://h:1/x' has a database"),
    ("ASTERISK", "VERSION", "99", "[ASTERISK] VERSION must be an Asterisk major version"),
    ("ASTERISK", "RxFax_APP", "Receive Fax", "[ASTERISK] RxFax_APP must be an Asterisk application"),
    ("ASTERISK", "AMI_PORT", "0", "[ASTERISK] AMI_PORT must be >= 1, got 0"),
    ("ASTERISK", "AMI_AUTH", "kerberos",
     "[ASTERISK] AMI_AUTH: unknown login method 'kerberos'; use md5 or plain"),
    ("FILE", "Ast_Sound_Format", "mp3",
     "[FILE] Ast_Sound_Format: unknown sound format 'mp3'; use wav, ul, al"),
    ("CGI", "SERVER", "xvb.example.com", "[CGI] SERVER must be an http(s) address"),
    ("CGI", "TRUSTED_4_UI_DF", "10\\.1\\.(", "[CGI] TRUSTED_4_UI_DF: '10\\\\.1\\\\.(' is not a valid regular"),
    ("EMAIL", "FORKS", "0", "[EMAIL] FORKS must be >= 1, got 0"),
    ("EMAIL", "FROM", "''", "[EMAIL] FROM must not be empty"),
    ("EMAIL", "FROM", "nobody", "[EMAIL] FROM: 'nobody' is not a mail address"),
    ("EMAIL", "STARTTLS", "maybe", "[EMAIL] STARTTLS: unknown STARTTLS setting 'maybe'; use no, try or yes"),
    ("EMAIL", "CA_FILE", "/nonexistent/ca.pem", "[EMAIL] CA_FILE: no such file '/nonexistent/ca.pem'"),
    ("EMAIL", "MAX_TRIES", "0", "[EMAIL] MAX_TRIES must be >= 1, got 0"),
    ("EMAIL", "ALLOW_LOCAL", "perhaps", "[EMAIL] ALLOW_LOCAL: 'perhaps' is not a flag"),
    ("DEBUG", "LEVEL", "256", "[DEBUG] LEVEL must be <= 255, got 256"),
    ("DEBUG", "SEND_TO", "FILE,EMAIL", "[DEBUG] SEND_TO: unknown log target 'EMAIL'; use FILE or SYSLOG"),
    ("SIP", "REGISTRAR_TYPE", "OPENSIPS",
     "[SIP] REGISTRAR_TYPE: unknown registrar type 'OPENSIPS'; use ASTERISK or SER"),
    ("RADIUS", "ACCT_RETRIES", "0", "[RADIUS] ACCT_RETRIES must be >= 1, got 0"),
    ("GEARMAN", "FUNC", "notify_twitter", "[GEARMAN] FUNC: unknown job 'notify_twitter'"),
    ("DB", "URL", "postgres://x/y", "[DB] URL: unknown database 'postgres://x/y'; use sqlite:FILE"),
    ("DB", "URL", "mysql://root@127.0.0.1", "[DB] URL needs a host and a database name"),
    ("DB", "URL", "sqlite::memory:", "[DB] URL needs a file"),
    ("AGI", "LISTEN", "udp:4573", "[AGI] LISTEN: 'udp:4573' is not a listening address"),
    ("AGI", "LISTEN", "tcp:70000", "[AGI] LISTEN: 'tcp:70000' has no valid port"),
    ("WEB", "LISTEN", "ssl:8443", "[WEB] LISTEN: 'ssl:8443' needs privateKey=FILE"),
    ("WEB", "LISTEN", "ssl:8443:privateKey=/nonexistent.pem",
     "[WEB] LISTEN: privateKey file '/nonexistent.pem' does not exist"),
    ("WEB", "SESSION_TIMEOUT", "10", "[WEB] SESSION_TIMEOUT must be >= 60, got 10"),
    ("ATTEMPTS", "PASSWORD", "0", "[ATTEMPTS] PASSWORD must be >= 1, got 0"),
    ("TIMEOUT", "DIGIT", "100", "[TIMEOUT] DIGIT must be >= 500, got 100"),
])
def test_bad_values_are_refused_with_a_clear_message(section: str, key: str, value: str,
                                                      message: str) -> None:
    problems = problems_of(f"# a comment\n[{section}]\n{key} = {value}\n")
    assert len(problems) == 1, problems
    assert problems[0].startswith("test.conf:3: "), problems
    assert message in problems[0], problems


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of("[CALLBLAST]\nSLEEP = 0\nMAX_CALLS = x\n[CDR]\nSEND_TO = FTP\n")
    assert len(problems) == 3
    assert any("SLEEP" in p for p in problems) and any("FTP" in p for p in problems)


@pytest.mark.parametrize(("text", "message"), [
    ("[RADIUS]\nACCT_HOST = 127.0.0.1\n", "[RADIUS] ACCT_SECRET must be set when ACCT_HOST"),
    ("[COMMON]\nUSE_BILLING = -1\n", "[COMMON] USE_BILLING -1 (external billing) needs [RADIUS]"),
    ("[CDR]\nSEND_TO = UDP\nUDP_SERVER =\n", "[CDR] UDP_SERVER must list at least one"),
    ("[ASTERISK]\nAMI_HOST = 10.0.0.1\n", "[ASTERISK] AMI_SECRET must be set when AMI_HOST"),
    ("[EMAIL]\nPASSWORD = x\n", "[EMAIL] PASSWORD is set but USER is empty"),
    ("[EMAIL]\nRETRY_MIN = 600\nRETRY_MAX = 60\n", "[EMAIL] RETRY_MIN (600 s) must not be longer than RETRY_MAX"),
])
def test_keys_that_need_each_other(text: str, message: str) -> None:
    problems = problems_of(text)
    assert any(message in p for p in problems), problems


def test_unknown_keys_and_sections_are_warned_about() -> None:
    s = parse_settings("[COMMON]\nMSG_IN_PAGE = 180\n[TABLES]\nREPORT = VPBX_REPORTS\n", "old.cfg")
    assert len(s.warnings) == 2
    assert s.warnings[0].startswith("old.cfg:3: section [TABLES] is not used by xvbd")
    assert s.warnings[1].startswith("old.cfg:2: [COMMON] MSG_IN_PAGE is not used by xvbd")
    assert "SERVER_ID" in s.warnings[1], "the warning lists the keys that exist"


def test_a_radius_authorizer_without_external_billing_is_warned_about() -> None:
    text = ("[RADIUS]\nACCT_HOST = 10.0.0.5\nACCT_SECRET = s\nAUTH_HOST = 10.0.0.6\n")
    (warning,) = parse_settings("[COMMON]\nUSE_BILLING = 0\n" + text, "x.conf").warnings
    assert warning == ("x.conf:6: [RADIUS] AUTH_HOST is used only with [COMMON] USE_BILLING "
                       "= -1 (external billing), which is 0; it is ignored")
    external = parse_settings("[COMMON]\nUSE_BILLING = -1\n" + text, "x.conf")
    assert external.warnings == ()
    assert external.radius.auth_host is not None and external.radius.auth_host.port == 1812


def test_values_in_quotes_and_keys_in_any_case() -> None:
    s = parse_settings("[common]\nserver_id = 'FCC-NN'\n[file]\nAST_SOUND_FORMAT = \"ul\"\n")
    assert (s.common.server_id, s.file.ast_sound_format) == ("FCC-NN", "ul")


def test_the_originals_cfg_style_loads() -> None:
    text = ("[COMMON]\nPSTN_GW\t\t\t\t\t= 127.0.0.1\nSIP_DOMAINS\t\t\t\t= 0.0.0.0\n"
            "MEM_CACHED\t\t\t\t= '127.0.0.1:11211'\nSERVER_ID\t\t\t\t= DEFAULT_NODE\n"
            "DATE_FORMAT = '%m/%d/%y %H:%M:%S %Z'\n")
    s = parse_settings(text, "xvb.cfg")
    assert s.common.sip_domains == ()
    assert s.common.mem_cached == (RedisAddress("127.0.0.1", 11211),)
    assert len(s.warnings) == 1 and "DATE_FORMAT" in s.warnings[0]


def test_a_file_that_is_not_ini_or_not_there() -> None:
    assert "cannot read the file as INI" in problems_of("SERVER_ID = x\n")[0]
    dup = problems_of("[COMMON]\nSERVER_ID = a\nSERVER_ID = b\n")[0]
    assert "SERVER_ID" in dup and "already exists" in dup
    with pytest.raises(ConfigError, match=re.escape("no such configuration file")):
        load_settings("/nonexistent/xvb.conf")
