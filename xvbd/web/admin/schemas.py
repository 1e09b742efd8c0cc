"""The operator's objects as forms and API fields: what each accepts, labelled as the
original's admin screens label them."""

from __future__ import annotations

from xvbd.engine.types import REGISTRY, load_builtin_types
from xvbd.web.forms import Field

#: The largest count an INTEGER column holds on both backends (MariaDB's is 32-bit).
INT_MAX = 2**31 - 1

LANGUAGE = r"[A-Za-z0-9_.-]{1,32}"
CONTEXT = r"[A-Za-z0-9_.-]{0,80}"
PHONE = r"[0-9A-Za-z*#+]{1,64}"
CODE = r"[0-9]{1,16}"
NODE_ID = r"[A-Za-z0-9_.-]{1,64}"

NODE = (
    Field("id", "Node id (SERVER_ID)", required=True, pattern=NODE_ID,
          pattern_help="letters, digits, . _ - (up to 64)"),
    Field("download_ip", "Download IP", max_length=64),
    Field("asterisk_ip", "Asterisk IP", max_length=64),
    Field("comment", "Comment"),
    Field("limit_calls", "Limit: calls", "int", minimum=0, maximum=100000,
          help="0: no limit", section="Limits"),
    Field("limit_la_1", "Limit: load average 1 min", "float", minimum=0, maximum=1000,
          section="Limits"),
    Field("limit_la_5", "Limit: load average 5 min", "float", minimum=0, maximum=1000,
          section="Limits"),
    Field("limit_la_10", "Limit: load average 10 min", "float", minimum=0, maximum=1000,
          section="Limits"),
    Field("stat_url", "Stat URL"),
)

TARIFF = (
    Field("name", "Name", required=True, max_length=100),
    Field("currency_id", "Currency", "int", required=True, minimum=1),
    Field("monthly_fee", "Monthly fee", "money", minimum=0, maximum=10**9, section="Fees"),
    Field("daily_fee", "Daily fee", "money", minimum=0, maximum=10**9, section="Fees"),
    Field("ivr_minute", "IVR: a minute", "money", minimum=0, maximum=10**6, section="IVR"),
    Field("ivr_call", "IVR: a call", "money", minimum=0, maximum=10**6, section="IVR"),
    Field("callblast_minute", "CallBlast: a minute", "money", minimum=0, maximum=10**6,
          section="CallBlast"),
    Field("callblast_call", "CallBlast: a call", "money", minimum=0, maximum=10**6,
          section="CallBlast"),
    Field("callback_minute", "CallBack: a minute", "money", minimum=0, maximum=10**6,
          section="CallBack"),
    Field("callback_call", "CallBack: a call", "money", minimum=0, maximum=10**6,
          section="CallBack"),
)

_LIMITS = (
    ("max_inbound_calls", "Maximum concurrent inbound calls", 0, "0: no limit"),
    ("max_messages_per_ext", "Maximum Number of messages in ext", -1, ""),
    ("max_messages_total", "Maximum Number of messages total", -1, ""),
    ("max_extensions", "Maximum Number of extensions", -1, ""),
    ("max_cid_filters", "Maximum Number of CID filters", -1, ""),
    ("max_routes", "Maximum Number of routes", -1, ""),
    ("max_peers", "Maximum Number of peers", -1, ""),
    ("max_registrations", "Maximum Number of custom registrations", -1, ""),
    ("max_phones", "Maximum Number of phones", -1, ""),
    ("max_macros", "Maximum Number of macros", -1, ""),
    ("max_callblast_items", "Maximum Number of CallBlast items in ext", -1, ""),
    ("max_gotoif_items", "Maximum Number of GotoIf items in ext", -1, ""),
    ("max_followme_phones", "Maximum Phones for FollowMe & Queues", -1, ""),
    ("max_callblast_phones", "Maximum Phones for CallBlast item", -1, ""),
    ("max_schedule_items", "Maximum Number of Schedule items in ext", -1, ""),
    ("max_podcasts", "Maximum Number of podcasts in ext", -1, ""),
    ("max_calendar_events", "Maximum Number of GoogleCalendar events", -1, ""),
    ("max_queues", "Maximum Number of Queues", -1, ""),
    ("max_email_attachment_bytes", "Maximum email-attachment size (byte)", 0, ""),
    ("max_tts_download_bytes", "Maximum TTS download size (byte)", 0, ""),
    ("max_tts_string_bytes", "Maximum TTS string size (byte)", 0, ""),
)
_DURATIONS = (
    ("max_call_duration", "Maximum incoming call duration (sec)", "0: no limit"),
    ("max_message_duration", "Maximum message duration (sec)", ""),
    ("max_name_duration", "Maximum name duration (sec)", ""),
    ("max_greeting_duration", "Maximum greeting duration (sec)", ""),
    ("max_announcement_duration", "Maximum announcement duration (sec)", ""),
    ("max_retrydial_duration", "Maximum RetryDial duration (sec)", ""),
    ("max_moh_duration", "Maximum MOH duration (sec)", ""),
)
_FEATURES = (
    ("allow_tts", "TTS greetings"), ("allow_macros", "Macros"),
    ("allow_direct_dialout", "Direct dialout"), ("allow_custom_routes", "Custom routes"),
    ("allow_phones", "Phones"), ("allow_custom_system_files", "Custom system files"),
    ("advanced_callblast", "Advanced CallBlast"), ("google_analytics", "Google Analytics"),
    ("allow_api", "API"), ("allow_icecast", "IceCast"),
)

GROUP = (
    Field("name", "Name", required=True, max_length=100),
    Field("tariff_id", "Tariff", "int", required=True, minimum=1),
    Field("server_id", "Node", required=True, pattern=NODE_ID,
          pattern_help="a node id of the Nodes list"),
    Field("dialout_context", "Dialout asterisk context", pattern=CONTEXT,
          pattern_help="an Asterisk context name"),
    Field("conference_context", "Conference asterisk context", pattern=CONTEXT,
          pattern_help="an Asterisk context name"),
    Field("language", "Language for new users", pattern=LANGUAGE,
          pattern_help="a language pack like xvb.EN-Female"),
    Field("template_prefix", "Template prefix", max_length=32),
    Field("sound_prefix", "Sound prefix", max_length=32),
    Field("preferred_codec", "Preferred codec", max_length=16),
    Field("phone_features", "Phone features", help="service numbers allowed, e.g. **1,**2"),
    Field("hooks", "Hooks", help="Python hook modules, comma separated"),
    *(Field(name, label, "int", minimum=low, maximum=INT_MAX, help=help_ or
            ("-1: no limit" if low < 0 else ""), section="Limits")
      for name, label, low, help_ in _LIMITS),
    *(Field(name, label, "int", minimum=0, maximum=86400 * 7, help=help_,
            section="Durations") for name, label, help_ in _DURATIONS),
    Field("max_web_request_seconds", "Maximum web request time (sec)", "int", minimum=1,
          maximum=120, help="WEB-Request and web variables: the longest a fetch may take",
          section="Durations"),
    *(Field(name, label, "bool", section="Other features") for name, label in _FEATURES),
)


def type_names() -> list[str]:
    load_builtin_types()
    return sorted(REGISTRY)


USER = (
    Field("voice_number", "Phone number (VoiceNumber)", required=True, pattern=PHONE,
          pattern_help="digits (letters for a SIP subdomain), * # +"),
    Field("access_code", "Access code", required=True, pattern=CODE,
          pattern_help="1 to 16 digits"),
    Field("pin", "PIN", pattern=r"[0-9]{0,16}", pattern_help="up to 16 digits (empty: none)"),
    Field("name", "Name"),
    Field("email", "E-mail", pattern=r"([^@\s,;]+@[^@\s,;]+(\s*,\s*[^@\s,;]+@[^@\s,;]+)*)?",
          pattern_help="addresses like name@example.com, separated by commas"),
    Field("language", "Language", pattern=LANGUAGE,
          pattern_help="a language pack like xvb.EN-Female"),
    Field("timezone", "Timezone", max_length=64, help="like Europe/Moscow"),
    Field("group_id", "Group", "int", required=True, minimum=1),
    Field("status", "Status", "choice", choices=(("active", "active"), ("locked", "locked"))),
    Field("read_only", "Read-only", "bool"),
    Field("max_inbound_calls", "Maximum concurrent inbound calls", "int", minimum=0,
          maximum=100000, help="0: the group's limit only"),
)

PARTNER = (
    Field("login", "Login", required=True, pattern=r"[A-Za-z0-9_.@-]{1,64}",
          pattern_help="letters, digits, . _ @ -"),
    Field("password", "Password", "password", min_length=8,
          help="at least 8 characters; empty keeps it"),
    Field("group_id", "Group", "int", required=True, minimum=1),
    Field("description", "Description"),
    Field("can_change_balance", "May top up and debit balances", "bool"),
    Field("balance_limit", "Largest single balance change", "money", minimum=0,
          maximum=10**9, help="0: no limit"),
)

DID = (
    Field("did", "DID", required=True, pattern=PHONE, pattern_help="digits, * # +"),
    Field("user_id", "User id", "int", required=True, minimum=1),
)

DID_ATTR = (
    Field("did", "Public number", required=True, pattern=PHONE, pattern_help="digits, * # +"),
    Field("language", "Language", required=True, pattern=LANGUAGE,
          pattern_help="a language pack like xvb.EN-Female"),
)

BALANCE = (
    Field("amount", "Amount", "money", required=True, minimum=-10**9, maximum=10**9,
          help="negative to debit"),
    Field("reason", "Reason", required=True, max_length=255),
)

#: A group's limit on extensions of one type (-1: no limit, 0: not allowed).
TYPE_LIMIT = Field("max_count", "Most extensions of the type", "int", required=True,
                   minimum=-1, maximum=INT_MAX, help="-1: no limit, 0: not allowed")
