"""The engine: one call from its AGI environment to its last CDR record.

``serve`` answers, runs the script the request names (``ivr``: DIDs and public numbers,
``sip``: SIP domains), and whatever happens (a hang-up, a failing extension, xvbd
stopping) runs the call's stop work once before the socket is closed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from xvbd.accounting.radius import RadiusAccounting, RadiusAuthorizer
from xvbd.accounting.sinks import CDREmitter
from xvbd.agi.channel import AGIChannel
from xvbd.agi.protocol import AGIEnv, AGIError, Hangup
from xvbd.config import Settings
from xvbd.counters import Counters
from xvbd.engine import entry, guard, outbound, prompts
from xvbd.engine.call import Call
from xvbd.engine.directory import Directory
from xvbd.engine.tts import TTS
from xvbd.engine.types import load_builtin_types
from xvbd.engine.webfetch import WebFetcher
from xvbd.hooks import HookRunner
from xvbd.logs import logger
from xvbd.mail.compose import MailSetup
from xvbd.mediadirs import MediaDirs
from xvbd.store import Store
from xvbd.store.db import DatabaseUnavailable

log = logger("xvbd.engine")

Script = Callable[[Call], Awaitable[None]]


class Engine:
    def __init__(self, settings: Settings, store: Store, directory: Directory,
                 counters: Counters, cdr: CDREmitter, clock: Any, *, media: MediaDirs,
                 hooks: HookRunner | None = None, tts: TTS | None = None,
                 radius: RadiusAccounting | None = None,
                 authorizer: RadiusAuthorizer | None = None,
                 web: WebFetcher | None = None) -> None:
        load_builtin_types()
        self.settings = settings
        self.store = store
        self.directory = directory
        self.counters = counters
        self.cdr = cdr
        self.clock = clock
        self.hooks = hooks or HookRunner()
        self.tts = tts
        self.media = media
        self.radius = radius
        self.authorizer = authorizer
        #: The guarded HTTP client of WEB-Request and web variables (None: they fail).
        self.web = web
        self.scripts: dict[str, Script] = {"ivr": entry.inbound, "sip": entry.sip,
                                           "callblast": outbound.callblast,
                                           "callback": outbound.callback}
        #: Called when a caller asked for a callback (the callback dialer places it).
        self.callback_requested: Callable[[], None] = lambda: None
        #: How mails are written ([EMAIL], [CGI] SERVER), and what is called once one is
        #: queued (the outbox's sender sends it).
        self.mail = MailSetup.of(settings)
        self.mail_queued: Callable[[], object] = lambda: None
        #: Calls being served now, and the calls served so far by their result word (OK,
        #: BUSY …), for ``/metrics``.
        self.calls_in_progress = 0
        self.calls_finished: Counter[str] = Counter()

    def new_call(self, env: AGIEnv, channel: AGIChannel) -> Call:
        script = env.script
        # Arguments of the shipped dialplan: ivr,CALLED,PEER,DOMAIN and sip,TO,PEER,DOMAIN.
        args = [*list(env.args), "", "", ""]
        called = args[0] if script == "ivr" and args[0] else env.get("extension")
        if script == "sip":
            target = entry.parse_sip_to(args[0], self.settings.common.sip_domains)
            called = (f"{target.voice_number}*{target.access_code}" if target
                      else args[0][:64])
        caller = entry.caller_id_for_cdr(env.callerid, args[1], args[2],
                                         self.settings.common.pstn_gw)
        source = guard.source_of(env.channel, args[1], env.callerid,
                                 entry.from_gateway(args[1], self.settings.common.pstn_gw))
        return Call(self, env, channel, called_id=called, caller_id=caller,
                    peer_address=entry.peer_host(args[1]), source=source)

    async def serve(self, env: AGIEnv, channel: AGIChannel) -> None:
        script = self.scripts.get(env.script)
        if script is None:
            log.warn("FastAGI request for an unknown script {script!r} from {channel}; "
                     "the dialplan should call ivr or sip", script=env.script,
                     channel=env.channel)
            try:
                await channel.set_variable("XVB_RESULT", "NOSCRIPT")
            except AGIError:
                pass
            return
        call = self.new_call(env, channel)
        self.calls_in_progress += 1
        try:
            await channel.answer()
            await script(call)
        except Hangup:
            if not call.result:  # gone before being served or told why not
                call.result = "ABANDONED"
        except DatabaseUnavailable as exc:  # the caller is told, politely, at once
            log.warn("call {call_id} on {channel}: {why}; the caller heard that something "
                     "went wrong", channel=env.channel, why=str(exc), **call.log_fields())
            call.result = "ERROR"
            await call.say_goodbye(prompts.ERROR)
        except AGIError as exc:  # Asterisk refused a command: said, not a traceback
            log.warn("call {call_id} on {channel} ended: {why}; the caller heard that "
                     "something went wrong (is Asterisk's res_agi as the README says? its "
                     "log may say more)", channel=env.channel, why=str(exc),
                     **call.log_fields())
            call.result = "ERROR"
            await call.say_goodbye(prompts.ERROR)
        except Exception:
            log.failure("call {call_id} on {channel} failed", channel=env.channel,
                        **call.log_fields())
            call.result = "ERROR"
            await call.say_goodbye(prompts.ERROR)
        finally:
            try:
                await call.finish()
            finally:
                self.calls_in_progress -= 1
                self.calls_finished[call.result or "NOUSER"] += 1
