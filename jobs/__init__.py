"""The job lifecycle: admission (``service``), typed parameters (``params``), the queue (``queue``,
``distributed``), the runner (``runner``), stored results (``results``), ``delivery``, ``claims``,
the GPU worker loop (``worker``) and ``metrics``.

Nothing here knows Telegram: the runner talks to the chat through :class:`jobs.events.JobEvents`
(implemented by ``bot.notifier``) and to the models through :class:`generation.backend.Backend`.
Layering: ``jobs`` imports ``generation``, ``prompting`` and ``storage``; never ``bot``, ``handlers``
or ``app``.
"""
