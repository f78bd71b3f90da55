"""Probes, paired statistics, metrics, figures and the study's aggregate."""
