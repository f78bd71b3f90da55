"""Running jobs: logs, attempts, failures, status, progress, provenance, devices, tracking, the controller."""
