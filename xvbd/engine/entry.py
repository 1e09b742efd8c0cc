"""Who answers a call: the entry points of SPEC section 3.

* a **private DID** goes straight to its user;
* a **public number** asks for the AccessCode, then the PIN where the user has one (in the
  language the DIDs attr gives the number); the seed's ``ANYONE`` entry holds access codes
  valid on every public number;
* a **SIP call** picks the user from the ``To:`` header and ``[COMMON] SIP_DOMAINS``.

Failures are counted across calls by the call's *source* (the peer address, the trunk, the
channel: ``engine/guard.py``), whatever the caller id says, so guessing a code or a PIN is
not practical; a source locked out is one WARN, a row on ``/ai/lockouts`` and a journal
entry.  A caller id never stands in for the PIN.  Each wrong PIN is logged (INFO) with the
number, the access code and the caller, and the call's CDR summary keeps the access code
tried and how it ended (``RESULT=BADPIN``).

Until a call is a user's, ``call.result`` says why it is not: NOUSER (no user has that
number or code), BADPIN (a user's code, but not its PIN), THROTTLED, or ABANDONED (the
caller hung up before being told).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from xvbd.engine import guard, prompts
from xvbd.engine.runner import walk
from xvbd.logs import logger
from xvbd.nodestats import node_key
from xvbd.passwords import secret_matches
from xvbd.store.accounts import User

if TYPE_CHECKING:
    from xvbd.engine.call import Call

log = logger("xvbd.entry")

ANYONE = "ANYONE"
MAX_CODE_DIGITS = 16


def caller_id_for_cdr(number: str, peer: str, domain: str, pstn_gw: tuple[str, ...]) -> str:
    """``[COMMON] PSTN_GW``: calls from elsewhere get ``@domain`` (or ``@ip``) appended."""
    if not pstn_gw or not peer:
        return number
    from_gateway, address = _from_gateway(peer, pstn_gw)
    return number if from_gateway else f"{number}@{domain or address}"


def from_gateway(peer: str, pstn_gw: tuple[str, ...]) -> bool:
    """Whether ``peer`` (an address, maybe with a port) is one of ``[COMMON] PSTN_GW``."""
    return bool(pstn_gw and peer) and _from_gateway(peer, pstn_gw)[0]


def peer_host(peer: str) -> str:
    """The dialplan's PEER (an address, maybe with a port) without its port."""
    return peer.rsplit(":", 1)[0] if peer.count(":") == 1 else peer


@lru_cache(maxsize=4096)
def _from_gateway(peer: str, pstn_gw: tuple[str, ...]) -> tuple[bool, str]:
    """Whether ``peer`` (an address, maybe with a port) is one of the gateways; and the
    address alone.  Gateways are few and call again and again: remembered."""
    address = peer_host(peer)
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return False, address
    return any(ip in _network(net) for net in pstn_gw), address


@lru_cache(maxsize=256)
def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text, strict=False)


@dataclass(frozen=True)
class SipTarget:
    voice_number: str
    access_code: str
    extension: str  # '' when the call lands on the root


def parse_sip_to(header: str, domains: tuple[str, ...]) -> SipTarget | None:
    """``To: sip:123@subdomain.comp.ru`` -> (subdomain, 123, '');
    ``To: sip:10@123.subdom.somecomp.com`` -> (subdom, 123, '10'); None if not ours."""
    text = header.strip()
    if "<" in text:
        text = text[text.index("<") + 1:text.index(">")] if ">" in text else text
    text = text.split(";", 1)[0]
    if text.lower().startswith(("sip:", "sips:")):
        text = text.split(":", 1)[1]
    user, sep, host = text.partition("@")
    if not sep or not user:
        return None
    host = host.split(":", 1)[0].lower().rstrip(".")
    for domain in sorted(domains, key=len, reverse=True):
        if host.endswith("." + domain):
            labels = host[: -len(domain) - 1].split(".")
            if len(labels) == 1 and labels[0]:
                return SipTarget(labels[0], user, "")
            if len(labels) == 2 and all(labels):
                return SipTarget(labels[1], labels[0], user)
    return None


async def inbound(call: Call) -> None:
    """Script ``ivr``: a DID of a user, or a public number that asks for codes."""
    directory = call.engine.directory
    user = await directory.user_by_did(call.called_id)
    if user is not None:  # a private DID: no code, no PIN (the seed's console log)
        await serve_user(call, user, user.access_code, pin_checked=True)
        return
    language = (await directory.public_language(call.called_id) or
                await directory.public_language(ANYONE))
    if language:
        await call.use_language(language)
    found = await ask_access_code(call, call.called_id)
    if found is not None:
        await serve_user(call, found, found.access_code, pin_checked=True)


async def sip(call: Call) -> None:
    """Script ``sip``: the To header (first argument) names the user and the extension."""
    header = call.env.args[0] if call.env.args else ""
    target = parse_sip_to(header, call.engine.settings.common.sip_domains)
    if target is None:
        log.info("SIP call to {to!r} matches no user of [COMMON] SIP_DOMAINS", to=header)
        call.result = "NOUSER"
        await call.say_goodbye(prompts.NOT_IN_SERVICE)
        return
    if await guard.refused(call):
        return
    user = await find_user(call, target.voice_number, target.access_code)
    if user is None:  # the code in To: is guessed like one typed
        if await guard.failed(call, guard=f"authfail:number:{target.voice_number}"):
            return
        call.result = "NOUSER"
        await call.say_goodbye(prompts.NOT_IN_SERVICE)
        return
    await serve_user(call, user, target.access_code, path=target.extension)


async def find_user(call: Call, voice_number: str, code: str) -> User | None:
    directory = call.engine.directory
    return (await directory.user_by_code(voice_number, code) or
            await directory.user_by_code(ANYONE, code))


async def ask_access_code(call: Call, voice_number: str) -> User | None:
    """Ask for the AccessCode (and the PIN) on a public number; None when it ends badly
    (the caller has been told why).  Wrong codes count against the call's source
    (``guard``); a number guessed at from many sources gives strangers one try a call."""
    settings = call.engine.settings
    number_guard, known = f"authfail:number:{voice_number}", f"number:{voice_number}"
    tries = (1 if await guard.slowed(call, number_guard, known)
             else settings.attempts.access_code)
    prompt = prompts.ENTER_ACCESS_CODE
    for _ in range(tries):
        if await guard.refused(call):
            return None
        code = await call.ask(prompt, settings.timeout.digit * 3, MAX_CODE_DIGITS)
        if not code:
            continue
        user = await find_user(call, voice_number, code)
        if user is None:
            if await guard.failed(call, guard=number_guard):
                return None
            prompt = prompts.NO_SUCH_CODE
            continue
        if user.has_pin and not await ask_pin(call, user):
            return None
        await guard.passed(call, "", known)
        return user
    call.result = "NOUSER"
    await call.say_goodbye(prompts.TOO_MANY_TRIES)
    return None


async def ask_pin(call: Call, user: User) -> bool:
    """Ask for the user's PIN; a right one forgets this source's earlier wrong ones.  The
    code tried is the call's from now on (its CDR summary names it, right PIN or not).
    Wrong PINs count against the call's source at this account, never against the account
    for everyone (``guard``)."""
    settings = call.engine.settings
    call.access_code = user.access_code
    target = guard.account_target(user.voice_number, user.access_code)
    account_guard, known = f"authfail:account:{user.id}", f"user:{user.id}"
    tries = 1 if await guard.slowed(call, account_guard, known) else settings.attempts.password
    prompt = prompts.ENTER_PIN
    wrong = 0
    for attempt in range(1, tries + 1):
        if await guard.refused(call, target):
            return False
        pin = await call.ask(prompt, settings.timeout.digit * 3, MAX_CODE_DIGITS, secret=True)
        if pin and await secret_matches(pin, user.pin_hash):
            await guard.passed(call, target, known)
            return True
        if pin:
            wrong += 1
            log.info("call {call_id} from {caller}: wrong PIN for {number}#{code} (try "
                     "{attempt} of {tries})", caller=call.caller_id,
                     number=user.voice_number, code=user.access_code, attempt=attempt,
                     tries=tries, **call.log_fields())
            if await guard.failed(call, target, user_id=user.id, guard=account_guard):
                return False
        prompt = prompts.PIN_INCORRECT
    # INFO like each wrong PIN: a caller's mistakes; guessing is the lockout's WARN.
    log.info("call {call_id} from {caller}: no right PIN for {number}#{code} in {tries} "
             "tries ({wrong} wrong, {silent} not typed); the line is put down",
             caller=call.caller_id, number=user.voice_number, code=user.access_code,
             tries=tries, wrong=wrong, silent=tries - wrong, **call.log_fields())
    call.result = "BADPIN"
    await call.say_goodbye(prompts.TOO_MANY_TRIES)
    return False


async def serve_user(call: Call, user: User, access_code: str, *, path: str = "",
                     pin_checked: bool = False) -> None:
    """The call is the user's now: checks, limits, hooks, then the walk of the IVR."""
    if user.has_pin and not pin_checked and not await ask_pin(call, user):
        return
    if not await open_call(call, user, access_code):
        return
    await walk_from(call, user, path)


async def open_call(call: Call, user: User, access_code: str, *, inbound: bool = True) -> bool:
    """Make the call ``user``'s: group, language, slots (the node's; an inbound call also
    the group's and the user's inbound limits), money, hooks.  False (the line put down
    politely, ``call.result`` saying why) when the call cannot go on."""
    engine = call.engine
    group = await engine.directory.group(user.group_id)
    if group is None:
        log.error("user {user} is in group {group}, which does not exist", user=user.id,
                  group=user.group_id)
        call.result = "NOUSER"
        await call.say_goodbye(prompts.NOT_IN_SERVICE)
        return False
    await call.become(user, group, access_code)
    if user.locked:
        call.result = "LOCKED"
        await call.say_goodbye(prompts.NOT_IN_SERVICE)
        return False
    await call.channel.set_variable("__XVB_AC", access_code)
    if user.language and user.language != call.language:
        await call.use_language(user.language)
    server_id = engine.settings.common.server_id
    node = await engine.directory.node(server_id)
    if not (await call.take_slot(node_key(server_id), node.limit_calls if node else 0) and
            (not inbound or (
                await call.take_slot(f"calls:group:{group.id}", group.max_inbound_calls) and
                await call.take_slot(f"calls:user:{user.id}", user.max_inbound_calls)))):
        call.result = "BUSY"
        await call.say_goodbye(prompts.ALL_BUSY)
        return False
    if not await call.start_billing():
        call.result = "NOFUNDS"
        await call.say_goodbye(prompts.NO_FUNDS)
        return False
    hooks = engine.hooks.load(group.hooks)
    call.add_hooks(hooks)
    for hook in hooks:
        await engine.hooks.run(hook, "start", call)
    return True


async def walk_from(call: Call, user: User, path: str = "") -> None:
    """Walk the user's IVR from the extension at ``path`` ('' = the root)."""
    tree = await call.engine.directory.tree(user.id)
    start = tree.by_path.get(path) if path else tree.root
    if start is None:
        log.info("user {user} has no extension {path!r}", user=user.id, path=path or "0")
        call.result = "NOEXT"
        await call.say_goodbye(prompts.NOT_IN_SERVICE)
        return
    await walk(call, tree, start)
