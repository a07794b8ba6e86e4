"""Telegram adapters: middlewares, keyboards, texts (i18n), the notifier (the chat side of a job),
retries, albums, broadcasts. Imports ``jobs``, ``generation``, ``prompting`` and ``storage``; never
``handlers`` or ``app`` (start-up lives in the composition root, ``app``)."""
