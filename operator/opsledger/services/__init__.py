"""Use cases: orchestrate domain rules and adapters, return an Outcome; never import kopf."""
