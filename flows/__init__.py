"""Prefect flows over dia_core: thin orchestration, no audio or model logic here."""
