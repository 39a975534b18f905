"""Slack listeners only: parse, call a service, render Block Kit.

``handlers.app.register_all`` wires every feature module's ``register(app, ctx)``."""
