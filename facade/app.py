"""The facade's app factory: builds the route table, clients, modes and stores once, and keeps them on the app."""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

import sqlalchemy as sa
from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from connectors.adapters import adapter_registry
from connectors.upstream import UpstreamClient
from connectors.wiring import upstream_config
from core.db import make_engine
from core.migrate import create_schema
from core.problems import problem
from core.routestore import PostgresRouteStore
from core.rules import RulesError, RuleSet, load_rules
from core.settings import Settings
from facade import admin, admin_page, ops, portal
from facade.background import Periodic
from facade.callers import admin_of, client_of, request_id_of
from facade.dispatch import Dispatcher
from facade.events import EventsMode
from facade.fastpath import PortalReads
from facade.freshness import ReplicaFreshness
from facade.guard import CanaryGuard, Figures
from facade.idempotency import PostgresIdempotencyStore
from facade.indoubt import InDoubtResolver
from facade.livetable import LiveRoutes, RouteSnapshot
from facade.logs import configure_logging
from facade.metrics import FacadeMetrics
from facade.modes import CanaryMode, CloudMode, LegacyMode, check_modes
from facade.parallel import ParallelMode, Shadower
from facade.shadow import Evidence, ShadowPool
from parallel_run.guard import GuardWindow
from parallel_run.normalisers import check_compare_rules
from parallel_run.store import ComparisonStore

OPEN_PATHS = ("/healthz", "/readyz", "/metrics")
KEY_PURGE_INTERVAL_S = 60.0
FRESHNESS_INTERVAL_S = 0.5
EVIDENCE_FLUSH_S = 0.5
log = logging.getLogger("strangler.facade")


@dataclass
class Facade:
    """Everything the app built, kept on `app.extensions["strangler"]` so tests and shutdown can reach it."""

    settings: Settings
    engine: sa.Engine
    routes: LiveRoutes
    clients: Mapping[str, UpstreamClient]
    in_doubt: InDoubtResolver
    metrics: FacadeMetrics
    background: Periodic
    shadow_clients: Mapping[str, UpstreamClient]
    shadow_pool: ShadowPool
    evidence: Evidence

    def close(self) -> None:
        """Stop the background threads, finish queued shadows, write their evidence and close connections."""
        self.background.stop()
        self.shadow_pool.close()
        try:
            self.evidence.flush()
        except Exception:
            log.exception("could not write the last comparisons")
        for client in (*self.clients.values(), *self.shadow_clients.values()):
            client.close()
        self.engine.dispose()


def check_adapters(rules: RuleSet, known: Mapping[str, object]) -> None:
    """Refuse rules that name an adapter the platform does not have, with the file and line."""
    for cap in rules.capabilities.values():
        for upstream, name in cap.adapters.items():
            if name not in known:
                raise RulesError(rules.source, cap.line, f"unknown adapter {name!r} for {upstream}", cap.name)


def breaker_listener(metrics: FacadeMetrics, upstream: str) -> Callable[[str, str], None]:
    """Return a breaker listener that keeps the upstream's breaker gauge current."""

    def changed(old: str, new: str) -> None:
        metrics.set_breaker(upstream, new)
        log.warning("circuit breaker changed", extra={"upstream": upstream, "from": old, "to": new})

    return changed


def report_lag(freshness: ReplicaFreshness, metrics: FacadeMetrics) -> None:
    """Refresh the known replica lag and expose it (NaN while unknown)."""
    freshness.refresh()
    metrics.replica_lag.set(float("nan") if freshness.lag_ms is None else freshness.lag_ms / 1000)


def flush_evidence(evidence: Evidence, pool: ShadowPool, metrics: FacadeMetrics) -> None:
    """Write the comparisons, noise and skips collected since the last flush, and expose the shadow queue's depth."""
    metrics.shadow_queue.set(pool.depth)
    evidence.flush()


def guard_figures(store: ComparisonStore) -> Figures:
    """Return the guard's view of the comparison store: comparisons, mismatches and errors since a moment."""

    def figures(capability: str, since: datetime, seconds: int) -> GuardWindow:
        stats = store.window(capability, since)
        errors = stats.shadow_errors + stats.shadow_timeouts + stats.primary_5xx
        return GuardWindow(stats.comparisons, stats.mismatches, errors, seconds)

    return figures


def create_app(settings: Settings, rules: RuleSet | None = None) -> Flask:
    """Build a facade app for these settings; rules default to the settings' rules file (refused if invalid)."""
    configure_logging()
    rules = rules or load_rules(settings.rules_path)
    adapters = adapter_registry()

    def validate(candidate: RuleSet) -> None:
        check_adapters(candidate, adapters)
        check_compare_rules(candidate)

    validate(rules)
    engine = make_engine(settings.database_url)
    create_schema(engine)
    store = PostgresRouteStore(engine)
    store.seed(rules, actor="facade")
    metrics = FacadeMetrics(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    clients = {
        name: UpstreamClient(
            upstream_config(spec, settings.upstream_urls.get(name)), on_breaker_change=breaker_listener(metrics, name)
        )
        for name, spec in rules.upstreams.items()
    }
    dispatcher = Dispatcher(clients, adapters, metrics)
    # Shadow calls get clients of their own: one attempt, their own breaker and connection budget, so a failing or
    # slow shadow side can neither trip the breaker nor take the slots that callers' requests use.
    shadow_clients = {
        name: UpstreamClient(
            replace(upstream_config(spec, settings.upstream_urls.get(name)), retry_attempts=1,
                    max_concurrency=2 * settings.shadow_workers, pool_size=2 * settings.shadow_workers)
        )
        for name, spec in rules.upstreams.items()
    }  # fmt: skip
    comparisons = ComparisonStore(engine)
    evidence = Evidence(comparisons)
    shadow_pool = ShadowPool(settings.shadow_workers, settings.shadow_queue)
    shadower = Shadower(Dispatcher(shadow_clients, adapters, metrics), shadow_pool, evidence, metrics)
    resolver = InDoubtResolver(
        engine, dispatcher, rules.capabilities, metrics, settings.in_doubt_grace_s, settings.watchdog_interval_s
    )

    def on_change(snapshot: RouteSnapshot) -> None:
        resolver.capabilities = snapshot.rules.capabilities
        metrics.route_version.set(snapshot.version)

    live = LiveRoutes(
        store, rules, settings.rules_path if rules.source == str(settings.rules_path) else None, on_change, validate
    )
    metrics.route_version.set(live.snapshot.version)
    background = Periodic()
    facade = Facade(
        settings, engine, live, clients, resolver, metrics, background, shadow_clients, shadow_pool, evidence
    )

    app = Flask("strangler.facade")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["strangler"] = facade
    idem = PostgresIdempotencyStore(engine, settings.idempotency_ttl_s, settings.idempotency_lease_s)
    freshness = ReplicaFreshness(engine)
    modes = check_modes(
        {
            "legacy": LegacyMode(dispatcher),
            "cloud": CloudMode(dispatcher, freshness),
            "canary": CanaryMode(dispatcher, shadower.shadow),
            "events": EventsMode(dispatcher, engine),
            "parallel": ParallelMode(dispatcher, shadower),
        }
    )
    the_portal = portal.Portal(live, modes, idem, resolver, metrics, engine)
    app.register_blueprint(portal.make_blueprint(the_portal))
    app.wsgi_app = PortalReads(app.wsgi_app, the_portal, settings.api_keys)  # type: ignore[method-assign]
    app.register_blueprint(ops.make_blueprint(engine, clients, live, metrics))
    if settings.admin_keys:  # without admin keys there is no admin API (and its paths admit no one)
        app.register_blueprint(admin.make_blueprint(live, store, modes))
        app.register_blueprint(
            admin_page.make_page(live, store, lambda: {name: c.breaker_state for name, c in clients.items()})
        )
    install_request_hooks(app, settings)
    background.every(settings.route_poll_s, "routes", live.refresh)
    background.every(settings.watchdog_interval_s, "in-doubt", resolver.sweep)
    background.every(KEY_PURGE_INTERVAL_S, "key-purge", idem.purge_expired)
    if settings.comparisons_retention_s > 0:
        keep_s = settings.comparisons_retention_s
        background.every(KEY_PURGE_INTERVAL_S, "evidence-purge", lambda: comparisons.purge_older_than(keep_s))
    background.every(FRESHNESS_INTERVAL_S, "replica-lag", lambda: report_lag(freshness, metrics))
    background.every(EVIDENCE_FLUSH_S, "evidence", lambda: flush_evidence(evidence, shadow_pool, metrics))
    guard = CanaryGuard(live, store, guard_figures(comparisons), metrics)
    background.every(settings.guard_interval_s, "guard", guard.check)
    return app


def install_request_hooks(app: Flask, settings: Settings) -> None:
    """Give every request an id and a client, and every error a problem-details body."""

    @app.before_request
    def identify() -> Response | None:
        g.request_id = request_id_of(request.headers.get("X-Request-ID", ""))
        if request.path in OPEN_PATHS:
            g.client_id = "-"
            return None
        # Admin paths take admin keys only, and the portal's paths portal keys only (the two sets never share one).
        if request.path == "/admin" or request.path.startswith(admin.ADMIN_PREFIX):
            client = admin_of(request.authorization, settings.admin_keys)
            how, challenge = "an admin key (Bearer, or Basic as the password)", 'Basic realm="strangler admin"'
        else:
            client = client_of(request.headers.get("Authorization", ""), settings.api_keys)
            how, challenge = "Authorization: Bearer <api key>", 'Bearer realm="strangler"'
        if client is None:
            return portal.to_response(
                problem(401, "unauthorized", "Unauthorized", f"send {how}", headers={"WWW-Authenticate": challenge})
            )
        g.client_id = client
        return None

    @app.after_request
    def tag(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        slug = {413: "body-too-large", 404: "no-such-route", 405: "method-not-allowed"}.get(code, "http-error")
        detail = f"the body exceeds {settings.max_body_bytes} bytes" if code == 413 else (exc.description or "")
        return portal.to_response(problem(code, slug, exc.name, detail))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error", extra={"request_id": g.get("request_id")})
        return portal.to_response(problem(500, "internal-error", "Internal error", f"request id {g.get('request_id')}"))


def create_app_from_env() -> Flask:
    """Build the app from STRANGLER_* variables: the gunicorn entry point (`facade.app:create_app_from_env()`)."""
    app = create_app(Settings.from_env())
    atexit.register(app.extensions["strangler"].close)
    return app
