"""The composition root: the only package that imports every other one.

- ``app.config``: the operator's settings (environment / ``.env``);
- ``app.wiring``: settings -> database, backend, guard, runner, queue, job service, Bot, Dispatcher;
- ``app.web``: webhook / polling and the ``/healthz`` and ``/metrics`` endpoints of the bot;
- ``app.__main__``: ``python -m app`` (the bot: polling or webhook);
- ``app.worker``: ``python -m app.worker`` (a GPU worker of the distributed mode).
"""
