"""The approval policy: `approval-policy.yaml` at the root of the CMDB repository, changed only by
pull request like everything there.

    # Who may approve changes to what; like CODEOWNERS, the last rule that matches decides.
    rules:
    - match: {services: ["*"]}
      approvers: {groups: [sre]}
    - match: {services: [shop], namespaces: [shop-prod], owners: [team-checkout]}
      approvers: {users: [alice], groups: [sre]}
    # How many approvals each assessed risk level needs (the requester never counts).
    required: {low: 1, medium: 1, high: 2}
    # Who may let a change through a freeze, blackout or calendar event (spec.freezeException),
    # besides the change's own approvals. Without it no exception can be approved.
    exceptions:
      approvers: {groups: [change-managers]}
      required: 1
    groups:
      sre: [alice, dana]
      change-managers: [dana]
    # One person's names in each place: Kubernetes (the requester), the forge (reviews), SSH
    # signing principals (signed commits) and git e-mail addresses (merge commits).
    people:
      alice: {kubernetes: [alice@corp.example], forge: alice, signers: [alice@corp.example]}
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from opsledger.models.common import CamelModel

POLICY_FILE = "approval-policy.yaml"
# Git's allowed-signers format (ssh-keygen ALLOWED SIGNERS): "<principal> <key type> <key>".
ALLOWED_SIGNERS_FILE = "allowed-signers"
RISK_LEVELS = ("low", "medium", "high")


class _Strict(CamelModel):
    model_config = ConfigDict(extra="forbid")


class PolicyMatch(_Strict):
    """Which changes a rule covers; "*" matches anything."""

    services: list[str] = Field(default_factory=lambda: ["*"], description="spec.service values.")
    namespaces: list[str] = Field(default_factory=lambda: ["*"], description="Namespaces.")
    owners: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Owners (spec.owner) of the change's target items; one match is enough.",
    )


class Approvers(_Strict):
    """Who may approve: people (by their policy name) and groups of them."""

    users: list[str] = Field(default_factory=list, description="People who may approve.")
    groups: list[str] = Field(default_factory=list, description="Groups whose members may.")


class PolicyRule(_Strict):
    match: PolicyMatch = Field(default_factory=PolicyMatch, description="The changes covered.")
    approvers: Approvers = Field(description="Who may approve them.")


class ExceptionRule(_Strict):
    """Who may approve a freeze exception (a change's leave to start during a freeze), and how
    many of them must: besides the approvals the change itself needs."""

    approvers: Approvers = Field(description="Who may approve freeze exceptions.")
    required: int = Field(default=1, description="Approvals needed from them; at least 1.", ge=1)


class Person(_Strict):
    """One person's identities; a name not listed anywhere stands for itself."""

    kubernetes: list[str] = Field(default_factory=list, description="Kubernetes user names.")
    forge: str | None = Field(default=None, description="Their login on the forge.")
    signers: list[str] = Field(
        default_factory=list, description="Their principals in the allowed-signers file."
    )
    git: list[str] = Field(default_factory=list, description="Their git e-mail addresses.")


class ApprovalPolicy(_Strict):
    """Who may approve changes to which services, and how many approvals a risk level needs."""

    rules: list[PolicyRule] = Field(
        default_factory=list, description="Approval rules; the last one that matches decides."
    )
    required: dict[str, int] = Field(
        default_factory=lambda: {"low": 1, "medium": 1, "high": 2},
        description="Approvals needed per risk level (low, medium, high); at least 1.",
    )
    exceptions: ExceptionRule | None = Field(
        default=None,
        description="Who may approve freeze exceptions; without it, none can be approved.",
    )
    groups: dict[str, list[str]] = Field(
        default_factory=dict, description="Groups of people, by their policy names."
    )
    people: dict[str, Person] = Field(
        default_factory=dict, description="People and their names in each place."
    )
