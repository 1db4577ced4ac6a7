"""The local development and test environment: real components on loopback."""
