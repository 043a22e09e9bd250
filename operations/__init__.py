"""The named operations every edge calls (CLI, service, Prefect flows, demo, dashboard).

Each operation holds its own locks and checks, so no edge can skip one by assembling the steps
itself. Runtime and Settings live here too: built by an edge, owned by none.
"""
