"""Platform adapters: one module per platform entry (DESIGN §14).

Each converts its platform's events into the runtime's own calls
(:func:`taskpack.fire.run_fire` for a scheduled fire, :func:`taskpack.http.handle`
for the task API) and back; none holds task logic of its own.
"""
