"""Keep one table plan per announced relation, re-planning (and adapting the target) when the source changes shape."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from replication.applier import Applier
from replication.config import MappingConfig
from replication.pgoutput import Relation
from replication.plan import SourceFacts, TablePlan, plan_table

log = logging.getLogger("strangler.replication")


class Planner:
    """Resolve a Relation to its TablePlan (None for tables the mapping does not carry), running drift DDL once."""

    def __init__(
        self,
        mapping: MappingConfig,
        facts: Callable[[Relation], SourceFacts],
        applier: Applier,
        type_names: Mapping[int, str],
    ) -> None:
        self.mapping, self._facts, self._applier, self._type_names = mapping, facts, applier, type_names
        self._plans: dict[int, tuple[Relation, TablePlan | None]] = {}

    def plan_for(self, relation: Relation) -> TablePlan | None:
        """Return the plan for this exact Relation, planning it (and running its DDL) on first sight."""
        cached = self._plans.get(relation.relation_id)
        if cached is not None and cached[0] is relation:
            return cached[1]
        mapping = self.mapping.tables.get(relation.qualified_name)
        if mapping is None:
            log.warning("ignoring changes of %s: the mapping does not carry it", relation.qualified_name)
            self._plans[relation.relation_id] = (relation, None)
            return None
        target = self._applier.describe(mapping.target_schema, mapping.target_table)
        plan = plan_table(mapping, relation, self._facts(relation), target, self._type_names)
        if plan.ddl:
            for statement in plan.ddl:
                log.info("schema of %s changed: %s", relation.qualified_name, statement)
            self._applier.prepare(plan)
        self._plans[relation.relation_id] = (relation, plan)
        return plan
