"""The job lifecycle: admission (service), the queue, the runner, claims, delivery, the distributed
broker and the GPU worker loop.

Nothing here knows Telegram: the runner talks to the chat through :class:`jobs.runner.JobEvents`
(implemented by ``bot.notifier``) and to the models through :class:`generation.backend.Backend`.
Layering: ``jobs`` imports ``generation``, ``prompting`` and ``storage``; never ``bot``, ``handlers``
or ``app``.
"""
