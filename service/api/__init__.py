"""The admin HTTP API: thresholds, review queue, feedback, drafts, senders, stats, health.

``create_app`` (service/api/app.py) builds the FastAPI application; the
daemon serves it from a thread when ``api.enabled`` is set, and ``warningshot
api`` serves it alone. This package's ``__init__`` imports nothing, so the
daemon can use ``service.api.live_thresholds`` without loading FastAPI.
"""
