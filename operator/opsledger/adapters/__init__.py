"""The outside world behind small interfaces: Kubernetes, Prometheus, Git, forges, metrics."""
