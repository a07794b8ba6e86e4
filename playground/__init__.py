"""The playground: the bot in a web chat on this machine, with no Telegram token (``python -m playground``).

Its parts also serve the end-to-end tests: :mod:`playground.emulator` (a local Telegram Bot API),
:mod:`playground.users` (scripted users of it), :mod:`playground.botproc` (the real bot process pointed
at it) and :mod:`playground.chat` (the web chat page).
"""
