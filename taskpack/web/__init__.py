"""The web dashboard at ``/_taskpack/`` (DESIGN §12).

* :mod:`taskpack.web.app` — :class:`~taskpack.web.app.Dashboard`, the ASGI
  application: the page's static files, the JSON endpoints under
  ``/_taskpack/api/`` (a small router other modules add routes to) and the
  live event stream;
* :mod:`taskpack.web.api` — tasks, runs and the run form's endpoint;
* :mod:`taskpack.web.live` — server-sent events (new runs, job changes);
* :mod:`taskpack.web.jobs` — the job API under ``/_taskpack/jobs`` (an
  extension of the task API, under its access policy);
* ``static/`` — the page itself: plain HTML, CSS and JavaScript, no build
  step, nothing fetched from elsewhere.

It serves ASGI servers only (``taskpack dev`` and the self-hosted presets):
the Cloudflare and Vercel entries keep runs in memory per isolate or
instance, so a dashboard there would show a random slice of the history.
The package depends on the runtime core (:mod:`taskpack.http`, the
registry, the store), never the reverse.
"""
