"""A standard-change template: `standard-changes/<name>.yaml` in the CMDB repository, changed
only by pull request. It pre-approves exactly the changes that fit its bounds.

    summary: Roll out a new image of a shop web workload
    risk: low
    targets:                      # which items it may touch (each bound optional)
      services: [shop]
      classes: [Workload]
      labels: {tier: web}
    plan:                         # what its plan may do (no `plan`: no plan at all, a permit)
      kinds: [Deployment]
      patchTypes: [json, merge]   # a merge patch's list replaces the whole list
      allow:                      # every value the patch sets must fit one of these
      - path: /spec/template/spec/containers/*/image
        pattern: "registry.example.com/web:[0-9.]+"
      - path: /spec/replicas
        min: 1
        max: 10
    checks:                       # checks the change must carry, exactly as written here
      post: [{name: error-ratio, query: "...", below: 0.01}]
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from opsledger.models.change import Checks, PatchType
from opsledger.models.common import CamelModel


class _Strict(CamelModel):
    model_config = ConfigDict(extra="forbid")


class ValueBound(_Strict):
    """One place a patch may set, and which values it may set there."""

    path: str = Field(
        description="A JSON pointer into the target; * stands for any one segment.",
        min_length=1,
    )
    pattern: str | None = Field(
        default=None, description="A regular expression the whole string value must match."
    )
    min: float | None = Field(default=None, description="Smallest number allowed.")
    max: float | None = Field(default=None, description="Largest number allowed.")
    values: list[Any] | None = Field(default=None, description="The only values allowed.")


class TargetBounds(_Strict):
    """Which configuration items a standard change may target."""

    services: list[str] = Field(default_factory=lambda: ["*"], description="spec.service globs.")
    names: list[str] = Field(default_factory=lambda: ["*"], description="Item name globs.")
    classes: list[str] = Field(default_factory=lambda: ["*"], description="Item classes.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels items must carry.")


class PlanBounds(_Strict):
    """What a standard change's plan may do; each step must patch the source of a target."""

    kinds: list[str] = Field(default_factory=lambda: ["*"], description="Target kinds.")
    patch_types: list[PatchType] = Field(
        default_factory=lambda: [PatchType.MERGE], description="Patch types allowed."
    )
    allow: list[ValueBound] = Field(
        default_factory=list, description="Where a patch may set values, and which."
    )


class StandardTemplate(_Strict):
    summary: str = Field(description="What the standard change does.")
    risk: str | None = Field(default=None, description="Its assessed risk, for reviewers.")
    description: str | None = Field(default=None, description="Longer text.")
    targets: TargetBounds = Field(default_factory=TargetBounds, description="Items it covers.")
    plan: PlanBounds | None = Field(
        default=None, description="What its plan may do; none: the change may have no plan."
    )
    checks: Checks | None = Field(
        default=None, description="Checks the change must carry, exactly as written."
    )
