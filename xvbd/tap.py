"""``twistd xvbd``: the options and the one service tree of the process.

Only this module touches the global reactor; everything below receives it.

``makeService`` only builds: nothing in the tree starts a thread, opens a pool, a file or a
connection before ``startService``.  twistd's daemon mode forks (twice) between the two, and
a thread started before the fork does not exist in the process that runs; files opened
before it would also escape twistd's umask and ``--uid``/``--gid``.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.threads import deferToThreadPool
from twisted.python import usage

import xvbd
from xvbd.accounting.fees import FeeCharger
from xvbd.accounting.lostcalls import LostCalls
from xvbd.accounting.radius import RadiusAccounting, RadiusAuthorizer, RadiusClient, RadiusService
from xvbd.accounting.retention import Retention
from xvbd.accounting.sinks import CDREmitter, DBSink, FileSink, Sink, UDPSink
from xvbd.accounting.spool import Spool
from xvbd.agi.server import FastAGIFactory
from xvbd.ami.client import AMIClient, Credentials
from xvbd.config import ConfigError, HostPort, Settings, load_settings
from xvbd.counters import Counters, LocalCounters, RedisCounters
from xvbd.engine.directory import Directory
from xvbd.engine.engine import Engine
from xvbd.engine.tts import TTS
from xvbd.engine.webfetch import web_fetcher
from xvbd.health import Component, ReactorLag, ami_health
from xvbd.liveness import Liveness, lease_for
from xvbd.logs import LEVEL_GATE, LoggingService, logger
from xvbd.mail.compose import MailSetup
from xvbd.mail.sender import MailSender, client_tls
from xvbd.mail.stats import DailyStats
from xvbd.mediadirs import MediaDirs, MediaService
from xvbd.metrics import MetricsPage, ProcessMetrics, metrics_registry
from xvbd.nodestats import NodeStats
from xvbd.outbound.callback import CallbackDialer
from xvbd.outbound.callblast import CallblastScheduler
from xvbd.outbound.dialer import Dialer, NodeRoom
from xvbd.services import (
    DatabaseService,
    ListenerService,
    OrderedMultiService,
    StartupError,
    fail_start,
)
from xvbd.store import Database, Store
from xvbd.store.migrations import SchemaError, check_schema
from xvbd.web.admin import AdminApp
from xvbd.web.limits import WebLimits
from xvbd.web.root import WebRoot, web_site
from xvbd.web.templating import Pages
from xvbd.web.tenant import TenantApp

log = logger("xvbd")

EXIT_CONFIG, EXIT_DATABASE, EXIT_LISTEN = 2, 3, 4


class Options(usage.Options):
    synopsis = "[-c FILE]"
    longdesc = "Run xvbd: the FastAGI server, the web interface and the AMI client."
    optParameters = [["config", "c", "etc/xvb.conf", "the xvb.conf to run with"]]


class XVBService(OrderedMultiService):
    """The process: logs its start-up line once the listeners are up, and turns a start-up
    failure into one clear message and a non-zero exit."""

    def __init__(self, settings: Settings, store: Store, reactor: Any = None) -> None:
        super().__init__()
        self.settings = settings
        self.store = store
        self.reactor = reactor
        self.daemon = False  # started by twistd in daemon mode (no -n)
        self._previous_hup: Any = None

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except StartupError as exc:
            for child in self:
                port = getattr(child, "port", None)
                if port is not None:
                    port.stopListening()
            if self.daemon:
                # twistd's waiting parent hears only of an Exception (it hangs on a
                # SystemExit): it prints the start of the message, points to the log, and
                # exits 1; the daemon removes its pidfile.
                log.critical("xvbd: cannot start: {reason}", reason=str(exc))
                raise
            fail_start(EXIT_LISTEN, str(exc))

    def startService(self) -> None:
        super().startService()
        # What start-up made lives as long as the process: out of the cyclic collector's
        # way.  And a call makes thousands of short-lived objects: collecting the young
        # generation every 700 allocations (the default) costs CPU and pauses for nothing.
        gc.freeze()
        gc.set_threshold(20_000, 50, 50)
        if self.reactor is not None and hasattr(signal, "SIGHUP"):
            self._previous_hup = signal.signal(signal.SIGHUP, self._on_sighup)
        agi = self.getServiceNamed("agi")
        web = self.getServiceNamed("web")
        log.info("xvbd {version} started: server_id={server_id} agi={agi} web={web} "
                 "db={backend} ({url})", version=xvbd.__version__,
                 server_id=self.settings.common.server_id, agi=agi.address(),
                 web=web.address(), backend=self.store.db.backend, url=str(self.store.db.url),
                 xvb_always=True)

    def stopService(self) -> Any:
        log.info("xvbd stopping", xvb_always=True)
        if self._previous_hup is not None:
            signal.signal(signal.SIGHUP, self._previous_hup)
            self._previous_hup = None
        return super().stopService().addCallback(self._stopped)

    def _stopped(self, _: Any) -> None:
        """A stop asked for by SIGTERM or SIGINT that completed (calls drained, records
        written, pool closed) is a clean exit: status 0, with ``-n`` and in daemon mode
        alike, under ``make run`` or a supervisor.  Left alone, twistd kills itself again
        with the signal once the reactor stops, which a shell or make reports as a failure
        (make: "*** Terminated", status 2).  A child that failed to stop keeps that exit by
        the signal."""
        if not self.stopped_cleanly:
            log.error("xvbd stopped, but not cleanly (see above)")
            return
        log.info("xvbd stopped", xvb_always=True)
        if getattr(self.reactor, "_exitSignal", None) is not None:
            self.reactor._exitSignal = None

    def _on_sighup(self, signum: int, frame: Any) -> None:
        self.reactor.callFromThread(self.reload)

    def reload(self) -> None:
        """SIGHUP: read the configuration file again and apply ``[DEBUG]`` (LEVEL, FULL,
        the log's targets); reopen the ``[DEBUG] FILE`` log and the ``[CDR] FILE`` (after a
        log rotation moved them).  A file with errors changes nothing and says why; the
        sections that changed otherwise are named: they take effect at the next start."""
        if not self.running:
            return
        try:
            fresh = None
            if self.settings.source != "<defaults>":
                try:
                    fresh = load_settings(self.settings.source)
                except ConfigError as exc:
                    log.error("reload: {source} has errors, nothing changed:\n  {problems}",
                              source=self.settings.source,
                              problems="\n  ".join(exc.problems))
                    return
            logging = self.getServiceNamed("logging")
            later: list[str] = []
            if fresh is not None:
                later = [f"[{f.name.upper()}]" for f in dataclasses.fields(Settings)
                         if f.name not in ("debug", "source", "warnings")
                         and getattr(fresh, f.name) != getattr(self.settings, f.name)]
                LEVEL_GATE.configure(fresh.debug.level, frozenset(fresh.debug.full))
                logging.settings = fresh.debug
                self.settings = dataclasses.replace(self.settings, debug=fresh.debug)
            logging.stopService()  # closes the log file; starting again opens it anew
            logging.startService()
            emitter = self.getServiceNamed("cdr")
            if isinstance(emitter, CDRService):
                emitter.reopen()
            log.info("xvbd reloaded {source}: [DEBUG] LEVEL = {bits}; log and CDR files "
                     "reopened{later}", source=self.settings.source, bits=LEVEL_GATE.level,
                     later="; changes in " + ", ".join(later) + " take effect at the next "
                     "start" if later else "", xvb_always=True)
        except Exception:
            log.failure("reload failed; xvbd goes on as it was")


class CDRService(CDREmitter):
    """The process's CDR emitter: its sinks are made when it starts, not when the tree is
    built (the FILE sink and the DB sink's spool open their file and start their writer
    thread when made)."""

    def __init__(self, make_sinks: Callable[[], list[Sink]]) -> None:
        super().__init__([])
        self._make_sinks = make_sinks
        self._retiring: list[Deferred[None]] = []

    def startService(self) -> Any:
        self.sinks = self._make_sinks()
        return super().startService()

    def reopen(self) -> None:
        """Each FILE sink is replaced by a new one on the same path (opened anew); the old
        one writes what it was given, then closes, and the stop waits for it too.  A file
        that cannot be opened keeps the old sink (and says why)."""
        for index, sink in enumerate(self.sinks):
            if isinstance(sink, FileSink):
                try:
                    fresh = FileSink(sink.path, sink.reactor)
                except OSError as exc:
                    log.error("[CDR] FILE {path} cannot be opened anew ({error}); records "
                              "still go to the file as it was", path=str(sink.path),
                              error=str(exc))
                    continue
                self.sinks[index] = fresh
                self._retiring.append(sink.stop())

    def stopService(self) -> Deferred[Any]:
        retiring, self._retiring = self._retiring, []
        return DeferredList([super().stopService(), *retiring], consumeErrors=True)


class SharedCounters(RedisCounters):
    """Redis counters whose connection pool is made when the service starts, and whose
    leases are named after the process that runs (its pid is known after twistd's fork)."""

    def __init__(self, connect: Callable[[], Any], server_id: str, **kwargs: Any) -> None:
        super().__init__(None, owner=server_id, **kwargs)
        self._connect = connect
        self._server_id = server_id

    def startService(self) -> None:
        self.owner = f"{self._server_id}:{os.getpid()}"
        self.redis = self._connect()
        super().startService()

    def stopService(self) -> Any:
        if self.redis is None:
            Service.stopService(self)
            return None
        return super().stopService()


def build_service(settings: Settings, reactor: Any) -> XVBService:
    """The service tree for ``settings``: children start in this order and stop in reverse."""
    db = Database(settings.db.url, pool_max=settings.db.pool_max,
                  connect_timeout=settings.db.connect_timeout, reactor=reactor)
    store = Store(db, clock=reactor.seconds)
    top = XVBService(settings, store, reactor)
    LoggingService(settings.debug).setServiceParent(top)
    DatabaseService(db).setServiceParent(top)
    # The CDR emitter and the AMI clients stop after the listeners, so the last calls'
    # records still reach them.
    emitter = CDRService(lambda: cdr_sinks(settings, store, reactor))
    emitter.setServiceParent(top)
    ami = MultiService()  # the AMI client of this node (CallBlast, Callback)
    ami.setName("ami")
    ami.setServiceParent(top)
    ami_client = node_ami(settings, reactor)
    if ami_client is not None:
        ami_client.setServiceParent(ami)
    counters = shared_counters(settings, reactor)
    if isinstance(counters, SharedCounters):
        counters.setServiceParent(top)
    NodeStats(settings.common.server_id, store.accounts, counters,
              settings.timeout.node_stats, reactor).setServiceParent(top)
    if settings.common.use_billing == 1:
        FeeCharger(store.billing, reactor).setServiceParent(top)
    Retention(store, settings.common.cdr_store, settings.common.journal_store,
              reactor).setServiceParent(top)
    if settings.common.mem_cached:
        log.info("[COMMON] MEM_CACHED is not used: each xvbd caches what calls read for a "
                 "few seconds in its own memory")
    radius = None
    if settings.radius.acct_host is not None:
        client = RadiusClient(settings.radius.acct_host, settings.radius.acct_secret, reactor,
                              timeout=settings.radius.acct_timeout,
                              retries=settings.radius.acct_retries)
        RadiusService(client).setServiceParent(top)
        radius = RadiusAccounting(client, settings.common.server_id,
                                  settings.radius.acct_send_events)
    authorizer = None
    if settings.common.use_billing == -1 and settings.radius.acct_host is not None:
        auth_host = settings.radius.auth_host or HostPort(settings.radius.acct_host.host, 1812)
        auth = RadiusClient(auth_host, settings.radius.acct_secret, reactor,
                            timeout=min(1.0, settings.radius.acct_timeout),
                            retries=settings.radius.acct_retries)
        auth_service = RadiusService(auth)
        auth_service.setName("radius-auth")
        auth_service.setServiceParent(top)
        authorizer = RadiusAuthorizer(auth, settings.common.server_id)
    # The heartbeat, and the settling of calls cut when their xvbd died (this one's last
    # run included): it stops after the AGI listener, once this process's calls are over.
    Liveness(store.processes, LostCalls(store.billing, emitter,
                                        lease_for(settings.timeout.heartbeat), reactor,
                                        radius=radius),
             settings.common.server_id, settings.timeout.heartbeat,
             reactor).setServiceParent(top)
    directory = Directory(store, reactor)
    media = MediaDirs(settings.path.media_dir, settings.path.tmp_dir, settings.path.media_group,
                      lambda fn, *a: deferToThreadPool(reactor, reactor.getThreadPool(), fn, *a))
    MediaService(media).setServiceParent(top)
    engine = Engine(settings, store, directory, counters, emitter, reactor, media=media,
                    tts=TTS(media, reactor), radius=radius, authorizer=authorizer,
                    web=web_fetcher(settings, reactor, media))
    # The outbox's sender: every xvbd sends what any of them queued, each mail once.
    mail = MailSender(settings.email, store.outbox, store.instance, reactor, reactor,
                      lambda fn, *a: deferToThreadPool(reactor, reactor.getThreadPool(), fn, *a),
                      tls=client_tls(settings.email))
    mail.setServiceParent(top)
    engine.mail_queued = mail.kick
    DailyStats(store, MailSetup.of(settings), settings.email.forks, reactor,
               mail.kick).setServiceParent(top)
    if ami_client is not None:
        dialer = Dialer(ami_client, reactor)
        room = NodeRoom(settings.common.server_id, directory.node, counters,
                        settings.callblast.load_threshold)
        CallblastScheduler(settings, store, directory, counters, dialer, room,
                           reactor).setServiceParent(top)
        callbacks = CallbackDialer(settings, store, dialer, room, reactor)
        callbacks.setServiceParent(top)
        engine.callback_requested = callbacks.kick
    lag = ReactorLag(reactor)
    lag.setServiceParent(top)
    agi_factory = FastAGIFactory(engine, clock=reactor, env_timeout=settings.agi.env_timeout)
    metrics = ProcessMetrics(
        settings.common.server_id, engine=engine, agi=agi_factory, db=db, emitter=emitter,
        redis=counters if isinstance(counters, RedisCounters) else None,
        ami=[ami_client] if ami_client is not None else [], lag=lag, mail=mail)
    pages = Pages()
    admin = AdminApp(settings, store, counters, pages)
    admin.mail_queued = mail.kick
    web = WebRoot(db, settings.common.server_id, clock=reactor,
                  admin=admin,
                  tenant=TenantApp(settings, store, counters, pages, directory=directory,
                                   media=media),
                  components={**health_components(counters, ami_client, lag, emitter),
                              "mail": mail.health},
                  metrics=MetricsPage(metrics_registry(metrics), settings.web.metrics_from))
    ListenerService("web", "[WEB] LISTEN", settings.web.listen,
                    web_site(web.app.resource(), settings.web.trusted_proxies,
                             WebLimits.of(settings.web), reactor),
                    reactor).setServiceParent(top)
    ListenerService("agi", "[AGI] LISTEN", settings.agi.listen, agi_factory, reactor,
                    on_stop=lambda: agi_factory.drain(settings.agi.shutdown_grace),
                    ).setServiceParent(top)
    return top


def health_components(counters: Counters, ami: AMIClient | None, lag: ReactorLag,
                      emitter: CDREmitter) -> dict[str, Component]:
    """What ``/healthz`` reports besides the database."""
    components: dict[str, Component] = {
        "reactor": lag.health,
        "cdr": lambda: [sink.health() for sink in emitter.sinks]}
    if isinstance(counters, RedisCounters):
        components["redis"] = counters.health
    if ami is not None:
        components["ami"] = ami_health(ami)
    return components


def node_ami(settings: Settings, reactor: Any) -> AMIClient | None:
    """The AMI client of ``[ASTERISK] AMI_HOST``; None (and said so) without one."""
    a = settings.asterisk
    if not a.ami_host:
        log.info("[ASTERISK] AMI_HOST is empty: no AMI connection; CallBlast and Callback "
                 "calls are not placed (inbound calls are served)")
        return None
    return AMIClient(settings.common.server_id, a.ami_host, a.ami_port,
                     Credentials(a.ami_username, a.ami_secret, a.ami_auth), reactor=reactor)


def shared_counters(settings: Settings, reactor: Any) -> Counters:
    """Redis counters when ``[COMMON] MEM_CACHED_SHARED`` names a server, else in-process.
    The Redis connections are opened when the service starts."""
    addresses = settings.common.mem_cached_shared
    if not addresses:
        return LocalCounters(reactor)
    import txredisapi

    if len(addresses) > 1:
        log.warn("[COMMON] MEM_CACHED_SHARED lists {n} servers; xvbd uses the first, {first}",
                 n=len(addresses), first=str(addresses[0]))
    first = addresses[0]
    return SharedCounters(
        lambda: txredisapi.lazyConnectionPool(first.host, first.port, dbid=first.db,
                                              poolsize=4, reconnect=True, connectTimeout=5),
        settings.common.server_id, prefix=first.prefix,
        lease_seconds=settings.timeout.counter_lease, clock=reactor,
        where=f"Redis {first.host}:{first.port} ([COMMON] MEM_CACHED_SHARED)")


def cdr_sinks(settings: Settings, store: Store, reactor: Any) -> list[Sink]:
    """The sinks of ``[CDR] SEND_TO``; the DB's spool lies beside the CDR file."""
    sinks: list[Sink] = []
    if "FILE" in settings.cdr.send_to:
        sinks.append(FileSink(settings.cdr.file, reactor))
    if "DB" in settings.cdr.send_to and settings.common.cdr_store > 0:
        spool = Spool(settings.cdr.file.with_name(settings.cdr.file.name + ".db-spool"),
                      reactor)
        sinks.append(DBSink(store.cdrs, spool, clock=reactor))
    if "UDP" in settings.cdr.send_to:
        sinks.append(UDPSink(settings.cdr.udp_server, reactor))
    return sinks


def makeService(options: Options, reactor: Any = None) -> XVBService:
    """Read the configuration, check the database, build the service tree.  Any problem is
    reported on stderr and the process exits non-zero before any port is opened."""
    if reactor is None:
        from twisted.internet import reactor as global_reactor
        reactor = global_reactor
    try:
        settings = load_settings(options["config"])
    except ConfigError as exc:
        fail_start(EXIT_CONFIG, "the configuration has errors:\n  " +
                   "\n  ".join(exc.problems))
    for warning in settings.warnings:
        sys.stderr.write(f"xvbd: warning: {warning}\n")
    try:
        check_schema(settings.db.url, settings.db.connect_timeout)
    except SchemaError as exc:
        fail_start(EXIT_DATABASE, str(exc))
    top = build_service(settings, reactor)
    twistd = getattr(options, "parent", None)
    top.daemon = twistd is not None and not twistd.get("nodaemon", True)
    return top
