"""The coordinators' dashboard and JSON API: an edge beside flows/, reading the domain.

Nothing in calendars/, models/ or notifications/ imports this package.
"""
