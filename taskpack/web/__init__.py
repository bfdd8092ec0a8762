"""The web parts beyond the task API: the job API (:mod:`taskpack.web.jobs`)
and the dashboard, under ``/_taskpack/``. They depend on the runtime core
(:mod:`taskpack.http`, the registry, the store), never the reverse."""
