"""llmprof's read-only JSON API: `python -m api` or `api.app.create_app()`."""
