"""Thin Kopf handlers, one module per kind: parse, call the domain, write status, emit Events."""
