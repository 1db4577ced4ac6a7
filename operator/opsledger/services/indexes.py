"""The names of the operator's eight Kopf indexes: the cross-object views handlers keep and use
cases read (a handler passes Kopf's keyword arguments on as `indexes`).

Each maps a key to a store of values (one per object that yields that key).
"""

from __future__ import annotations

# Kept by the Change handlers
CHANGE_PLANS = "change_plans"  # namespace → (name, targets, start, end, phase, finished at)
SERVICE_LEVELS = "change_service_levels"  # (namespace, service) → the ServiceLevel's spec, status
CRITICALITY = "change_item_criticality"  # "namespace/name" → the item's criticality
# Kept by the Incident handlers
TARGETS = "incident_targets"  # (namespace, service) → the ServiceLevel's incidentTargets
FACTS = "incident_facts"  # namespace → what correlation needs of each incident there
# Kept by the ConfigurationItem handlers
BY_SOURCE = "ci_by_source"  # source key → (created, namespace, name) of the CIs claiming it
POD_LABELS = "ci_pod_labels"  # namespace → (name, pod labels) of workload CIs
RELATIONS = "ci_relations"  # "namespace/name" → its (type, target) relationships
