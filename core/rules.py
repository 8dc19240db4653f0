"""Parse routing_rules.yaml into frozen route data; a bad file is refused with its path, line and reason (pure)."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from core.yamlconf import YamlConfigError, line_for, parse_validated

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MODES = frozenset({"legacy", "cloud", "canary", "events", "parallel"})
PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
WERKZEUG_PARAM = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


class RulesError(ValueError):
    """A routing rules file was refused; str() reads `file:line: [capability] reason`."""

    def __init__(self, source: str, line: int, reason: str, capability: str | None = None) -> None:
        self.source, self.line, self.reason, self.capability = source, line, reason, capability
        where = f"{source}:{line}: " + (f"[{capability}] " if capability else "")
        super().__init__(where + reason)


@dataclass(frozen=True)
class TlsSpec:
    verify: bool | str = True
    client_cert: str | None = None
    client_key: str | None = None


@dataclass(frozen=True)
class UpstreamSpec:
    """One upstream system (legacy, cloud) and how to talk to it."""

    name: str
    url: str
    connect_timeout_ms: int = 1000
    read_timeout_ms: int = 5000
    max_concurrency: int = 128
    queue_timeout_ms: int = 500
    retry_attempts: int = 3
    breaker_fail_max: int = 5
    breaker_reset_s: float = 5.0
    tls: TlsSpec = TlsSpec()


@dataclass(frozen=True)
class CanarySpec:
    percent: float = 0.0
    sticky_by: str = ""
    shadow: bool = False  # also send each call to the other side, off the caller's path, and compare


@dataclass(frozen=True)
class ParallelSpec:
    """How a capability is shadowed: who answers (None = the capability's primary) and how much is compared."""

    primary: str | None = None
    sample_percent: float = 100.0
    noise_percent: float = 10.0  # reads only: share of calls also sent to the primary twice to learn noise
    shadow_timeout_ms: int = 2000


@dataclass(frozen=True)
class CompareSpec:
    """How two outcomes of a capability are compared; every key is a JSON path like `$.items[*].amount`."""

    ignore: tuple[str, ...] = ()
    critical: tuple[str, ...] = ()  # never ignored silently: a difference here blocks a cutover
    tolerance: Mapping[str, float] = field(default_factory=dict)
    fold: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # "case", "whitespace"
    timestamps: Mapping[str, str] = field(default_factory=dict)  # truncate to day|hour|minute|second
    unordered: Mapping[str, str] = field(default_factory=dict)  # list path -> the member keying its items
    normalise: Mapping[str, str] = field(default_factory=dict)  # path -> a named normaliser function
    line: int = 0


@dataclass(frozen=True)
class ReadinessSpec:
    """What a parallel run must show before the capability may be cut over."""

    min_comparisons: int = 1000
    min_match_rate: float = 0.999
    max_critical_mismatches: int = 0
    window_s: int = 86400  # the evidence must span at least this long (first to last comparison)


@dataclass(frozen=True)
class GuardSpec:
    """When a canary is rolled back to legacy on its own: rates over the last `window_s` seconds."""

    max_mismatch_rate: float = 0.01
    max_error_rate: float = 0.05
    min_samples: int = 20
    window_s: int = 300


@dataclass(frozen=True)
class EventsSpec:
    """Where an events-mode capability's updates go and how the applier treats them."""

    topic: str
    key_by: str
    partitions: int = 6
    max_attempts: int = 8
    retry_backoff_ms: int = 200

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.topic}.dlq"


@dataclass(frozen=True)
class CapabilitySpec:
    """One capability: what it matches, who may answer it, and how its writes are protected."""

    name: str
    method: str
    path: str  # werkzeug rule syntax, e.g. /v1/accounts/<account_id>/balance
    mode: str
    critical: bool = False
    primary: str = "legacy"
    secondary: str = "cloud"
    adapters: Mapping[str, str] = field(default_factory=dict)
    idempotency: str = "none"
    in_doubt: str = "none"
    read_timeout_ms: int | None = None
    canary: CanarySpec = CanarySpec()
    events: EventsSpec | None = None
    max_lag_ms: int | None = None  # cloud reads of replicated data: answer from legacy while the replica lags more
    parallel: ParallelSpec = ParallelSpec()
    compare: CompareSpec = CompareSpec()
    readiness: ReadinessSpec = ReadinessSpec()
    guard: GuardSpec = GuardSpec()
    line: int = 0

    @property
    def is_write(self) -> bool:
        return self.method not in SAFE_METHODS

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(WERKZEUG_PARAM.findall(self.path))

    @property
    def parallel_primary(self) -> str:
        """The side that answers the caller in parallel mode."""
        return self.parallel.primary or self.primary

    @property
    def parallel_shadow(self) -> str:
        """The side that is shadowed in parallel mode: the other one of primary and secondary."""
        return self.secondary if self.parallel_primary == self.primary else self.primary


@dataclass(frozen=True)
class RuleSet:
    """The whole switchboard as loaded: upstreams and capabilities by name."""

    upstreams: Mapping[str, UpstreamSpec]
    capabilities: Mapping[str, CapabilitySpec]
    source: str = "<string>"


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(resources.files("core").joinpath("rules_schema.json").read_text())
    return schema


def to_werkzeug_path(template: str) -> str:
    """Turn an OpenAPI-style template (/v1/accounts/{account_id}) into werkzeug rule syntax."""
    return PARAM.sub(r"<\1>", template)


def parse_rules(text: str, source: str = "<string>", modes: Collection[str] = MODES) -> RuleSet:
    """Parse and validate rules text into a RuleSet, or raise RulesError naming file, line and reason."""
    try:
        data, lines = parse_validated(text, source, _schema())
    except YamlConfigError as exc:
        path = exc.path
        capability = str(path[1]) if len(path) > 1 and path[0] == "capabilities" else None
        raise RulesError(source, exc.line, exc.reason, capability) from None
    upstreams = {name: _upstream(name, spec) for name, spec in data["upstreams"].items()}
    capabilities: dict[str, CapabilitySpec] = {}
    seen_routes: dict[tuple[str, str], str] = {}
    for name, spec in data["capabilities"].items():
        cap = _capability(name, spec, lines[("capabilities", name)], line_for(lines, ("capabilities", name, "compare")))
        _check_capability(cap, upstreams, modes, source)
        route = (cap.method, PARAM.sub("{}", spec["match"]["path"]))
        if route in seen_routes:
            raise RulesError(source, cap.line, f"matches the same route as {seen_routes[route]}", name)
        seen_routes[route] = name
        capabilities[name] = cap
    return RuleSet(upstreams=upstreams, capabilities=capabilities, source=source)


def load_rules(path: Path, modes: Collection[str] = MODES) -> RuleSet:
    """Read and parse a rules file; an unreadable file is a RulesError too."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise RulesError(str(path), 0, f"cannot read: {exc.strerror}") from None
    return parse_rules(text, str(path), modes)


def _upstream(name: str, spec: Mapping[str, Any]) -> UpstreamSpec:
    breaker = spec.get("breaker", {})
    tls = spec.get("tls", {})
    return UpstreamSpec(
        name=name,
        url=spec["url"].rstrip("/"),
        connect_timeout_ms=spec.get("connect_timeout_ms", 1000),
        read_timeout_ms=spec.get("read_timeout_ms", 5000),
        max_concurrency=spec.get("max_concurrency", 128),
        queue_timeout_ms=spec.get("queue_timeout_ms", 500),
        retry_attempts=spec.get("retry_attempts", 3),
        breaker_fail_max=breaker.get("fail_max", 5),
        breaker_reset_s=float(breaker.get("reset_s", 5.0)),
        tls=TlsSpec(tls.get("verify", True), tls.get("client_cert"), tls.get("client_key")),
    )


def _compare(spec: Mapping[str, Any], line: int) -> CompareSpec:
    return CompareSpec(
        ignore=tuple(spec.get("ignore", ())),
        critical=tuple(spec.get("critical", ())),
        tolerance={k: float(v) for k, v in spec.get("tolerance", {}).items()},
        fold={k: tuple(v) for k, v in spec.get("fold", {}).items()},
        timestamps=dict(spec.get("timestamps", {})),
        unordered=dict(spec.get("unordered", {})),
        normalise=dict(spec.get("normalise", {})),
        line=line,
    )


def _capability(name: str, spec: Mapping[str, Any], line: int, compare_line: int) -> CapabilitySpec:
    canary = spec.get("canary", {})
    method = spec["match"]["method"]
    return CapabilitySpec(
        name=name,
        method=method,
        path=to_werkzeug_path(spec["match"]["path"]),
        mode=spec["mode"],
        critical=spec.get("critical", False),
        primary=spec.get("primary", "legacy"),
        secondary=spec.get("secondary", "cloud"),
        adapters=dict(spec.get("adapters", {})),
        idempotency=spec.get("idempotency", "none" if method in SAFE_METHODS else "required"),
        in_doubt=spec.get("in_doubt", "none"),
        read_timeout_ms=spec.get("read_timeout_ms"),
        canary=CanarySpec(float(canary.get("percent", 0)), canary.get("sticky_by", ""), canary.get("shadow", False)),
        events=EventsSpec(**spec["events"]) if "events" in spec else None,
        max_lag_ms=spec.get("max_lag_ms"),
        parallel=ParallelSpec(**spec.get("parallel", {})),
        compare=_compare(spec.get("compare", {}), compare_line),
        readiness=ReadinessSpec(**spec.get("readiness", {})),
        guard=GuardSpec(**spec.get("guard", {})),
        line=line,
    )


def _check_capability(
    cap: CapabilitySpec, upstreams: Mapping[str, UpstreamSpec], modes: Collection[str], source: str
) -> None:
    def refuse(reason: str) -> None:
        raise RulesError(source, cap.line, reason, cap.name)

    if cap.critical and cap.mode == "events":
        refuse("a critical capability cannot be answered in events mode")
    if cap.mode not in modes:
        refuse(f"unknown mode {cap.mode!r} (known: {', '.join(sorted(modes))})")
    if cap.mode == "events" and cap.events is None:
        refuse("events mode needs an events block (topic, key_by)")
    if cap.events and cap.events.key_by not in cap.path_params:
        refuse(f"events.key_by {cap.events.key_by!r} is not a path parameter")
    if cap.max_lag_ms is not None and cap.is_write:
        refuse("max_lag_ms bounds replica reads; a write cannot declare it")
    if cap.events and not cap.is_write:
        refuse("only a write can be answered in events mode")
    for role, upstream in (("primary", cap.primary), ("secondary", cap.secondary)):
        if upstream not in upstreams:
            refuse(f"{role} upstream {upstream!r} is not declared under upstreams")
    if cap.parallel.primary is not None and cap.parallel.primary not in (cap.primary, cap.secondary):
        refuse(f"parallel.primary {cap.parallel.primary!r} is neither the primary nor the secondary")
    if cap.is_write and cap.parallel.primary is not None and cap.parallel.primary != cap.primary:
        # Only the secondary (cloud) side has a dry run; a shadow write to the primary (legacy) would move real money.
        refuse("parallel.primary must stay the primary for a write: its shadow must be the side with a dry run")
    if cap.mode == "parallel" and cap.events is not None:
        refuse("a capability answered in events mode cannot be run in parallel")
    overlap = set(cap.compare.ignore) & set(cap.compare.critical)
    if overlap:
        refuse(f"compare: {', '.join(sorted(overlap))} cannot be both ignored and critical")
    for upstream in cap.adapters:
        if upstream not in upstreams:
            refuse(f"adapter given for undeclared upstream {upstream!r}")
    if cap.mode == "canary" and not cap.canary.sticky_by:
        refuse("canary mode needs canary.sticky_by (the request field that keeps a key on one side)")
    if cap.canary.sticky_by and not cap.is_write and cap.canary.sticky_by not in cap.path_params:
        refuse(f"canary.sticky_by {cap.canary.sticky_by!r} is not a path parameter of this read")
    if cap.in_doubt == "lookup" and not cap.is_write:
        refuse("in_doubt: lookup only makes sense for a write")
    if cap.is_write and cap.critical and cap.idempotency != "required":
        refuse("a critical write must require an Idempotency-Key")
