## Private-bot mode (bot.access, /invite)
cmd-invite = A one-person invitation link
private-refused = Sorry, this is a private bot: it draws for its owner's friends only. If you know the owner, ask them for an invitation link.
private-invite-invalid = Sorry, this invitation link has already been used or is not valid. Ask the bot's owner for a new one.
private-invite-accepted = 🎟 Welcome! Your invitation worked: the bot is open to you now.
private-invite-created = 🎟 An invitation for one person (it works once):
    { $link }
private-invite-open-bot = The bot is open to everyone now; invitations matter once ALLOWED_USERS or PRIVATE_BOT is set.
