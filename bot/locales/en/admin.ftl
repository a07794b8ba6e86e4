## Admin features (handlers/admin). Only admins ever see these texts, except the ones marked "users".

## Users see these
queue-paused = ⏸ New pictures are paused for a while. Please try again later.
queue-paused-reason = ⏸ New pictures are paused for a while: { $reason }
    Please try again later.
limit-daily = You have made your { $limit ->
    [one] { $limit } picture
   *[other] { $limit } pictures
} for today. The limit resets at midnight UTC, in { $hours } h { $minutes } min.
admin-job-cancelled-owner = ✖️ Cancelled by the administrator.
admin-unbanned-notice = You can use the bot again.

## Panel
admin-panel = <b>Admin panel</b> ({ $role })
    Jobs in progress: { $pending }
admin-panel-admins = Admins: { $admins }
admin-panel-owner-help = As an owner: /grant and /revoke with a user id or @username (or the buttons on a user's card).
admin-role-owner = owner
admin-role-admin = admin
admin-role-user = user
admin-btn-stats = 📊 Statistics
admin-btn-queue = 📋 Queue
admin-btn-limits = 🚦 Limits
admin-btn-models = 🧠 Models
admin-btn-broadcast = 📣 Broadcast
admin-btn-user = 👤 User
admin-btn-audit = 📜 Audit log
admin-btn-pause = ⏸ Pause
admin-btn-resume = ▶️ Resume
admin-btn-refresh = 🔄 Refresh
admin-btn-back = « Panel
admin-owner-only = Only owners (ADMIN_IDS) can do this.
admin-state-paused = ⏸ Paused: { $reason }
admin-yes = yes
admin-no = no
admin-unlimited = unlimited
admin-duration-s = { $n } s
admin-duration-min = { $n } min
admin-duration-h = { $h } h { $m } min

## Users, bans, grants
admin-user-ask = Send the user's id or @username, or forward a message of theirs.
admin-target-missing = Whom? /{ $command } &lt;user id or @username&gt;, or reply with it to a forwarded message of the user.
admin-target-hidden = That user hides their account in forwarded messages: use /{ $command } with their id or @username.
admin-user-not-found = No such user: they must have started the bot (/{ $command } &lt;user id or @username&gt;).
admin-user-card = <b>User</b> { $user }
    Name: { $name }
    Language: { $language }
    First seen: { $created }
    Last seen: { $seen }
    Role: { $role }
    Banned: { $banned }
    Blocked the bot: { $blocked }
admin-user-settings = <b>Settings</b>: { $model }, { $ratio }, { $style }, { $count } per request, beautification: { $beautify }
admin-user-counts = <b>Jobs</b>: { $total } ({ $details })
admin-user-moderation = <b>Safety refusals</b>: { $details }
admin-user-last-jobs = <b>Last jobs</b>:
admin-btn-ban = 🚫 Ban
admin-btn-unban = ✅ Unban
admin-btn-grant = ⭐ Make admin
admin-btn-revoke = ✖️ Revoke admin
admin-banned = 🚫 { $user } is banned. Cancelled: { $queued } queued, { $running } running.
admin-ban-already = { $user } is banned already.
admin-ban-admin = Admins cannot be banned: revoke their rights first.
admin-unbanned = ✅ { $user } is unbanned.
admin-unban-not-banned = { $user } is not banned.
admin-granted = ⭐ { $user } is an admin now.
admin-grant-already = { $user } is an admin already.
admin-grant-owner = { $user } is an owner.
admin-grant-banned = { $user } is banned: unban them first.
admin-revoked = { $user } is no longer an admin.
admin-revoke-not-admin = { $user } is not an admin.
admin-revoke-owner = { $user } is an owner: owners are set in ADMIN_IDS and cannot be revoked.
admin-audit-title = <b>Audit log</b> (latest first)
admin-audit-empty = Nothing yet.

## Statistics
admin-stats-users = <b>Users</b>: { $total } · active today { $today } · in 7 days { $week } · banned { $banned } · blocked the bot { $blocked }
admin-stats-today = today (UTC)
admin-stats-week = last 7 days
admin-stats-jobs = <b>Jobs, { $title }</b>: { $total }
    by model: { $models }
    by mode: { $modes }
    by status: { $statuses }
    failures: { $failed } · censored: { $censored }
admin-stats-timing-title = <b>Median wait in the queue / generation time</b> (7 days)
admin-stats-timing = { $model }: { $wait } / { $generation } ({ $jobs ->
    [one] { $jobs } job
   *[other] { $jobs } jobs
})
admin-stats-moderation = <b>Safety refusals</b>
    today: { $today }
    7 days: { $week }
admin-stats-queue = <b>Now</b>: { $queued } queued, { $running } running

## Queue
admin-queue-title = <b>Jobs in progress</b>: { $count }
admin-queue-empty = The queue is empty.
admin-queue-job = #{ $id } { $status } · { $user } · { $mode } · { $model } · { $age }
admin-btn-cancel-job = ✖️ #{ $id }
admin-job-cancelled = Job #{ $id } cancelled.
admin-job-not-pending = This job is no longer queued or running.
admin-paused = ⏸ Paused: no new jobs are taken from the queue, and new requests are refused. Reason: { $reason }. Waiting: { $queued }. /resume to go on.
admin-resumed = ▶️ Resumed. Waiting: { $queued }.
admin-not-paused = The queue is not paused.

## Limits
admin-limits = <b>Limits</b>
    Jobs in progress per user: { $user }
    Jobs per user per day (UTC): { $daily }
    Jobs in progress in all: { $queue }
    
    Change: /limits user &lt;n&gt; · /limits daily &lt;n|off&gt; · /limits queue &lt;n&gt;, or the buttons.
admin-limits-usage = Usage: /limits user &lt;1-100&gt; · /limits daily &lt;1-100000|off&gt; · /limits queue &lt;1-100000&gt;
admin-limit-set = Saved: { $name } = { $value }. It applies from the next request.
admin-btn-limit-user = per user: { $value }
admin-btn-limit-daily = daily: { $value }
admin-btn-limit-queue = queue: { $value }

## Models
admin-models-title = <b>Models</b>
admin-models-unavailable = This bot process has no generation backend to manage.
admin-model-loaded = ✅ { $model }: loaded on { $device }, { $memory }
admin-model-unloaded = ▫️ { $model }: not loaded
admin-btn-load = 🔥 Load / pre-warm { $model }
admin-btn-unload = ⏏ Unload { $model }
admin-model-loading = Loading { $model }…
admin-model-unloading = Unloading { $model }…
admin-model-failed = ❌ { $model }: { $error }
# What the model registry says about a model (generation/registry.py), under its line in /models.
admin-model-facts = ↳ { $family } · { $memory } · { $steps } · guidance { $guidance } · negative prompt: { $negative }
    ↳ modes: { $modes }
admin-model-steps = { $steps ->
    [one] { $steps } step
   *[other] { $steps } steps
}
admin-model-steps-fixed = { $steps } (fixed)
admin-model-no-guidance = none
admin-memory-medium = fits a 16 GB GPU
admin-memory-large = about 28 GB of VRAM (24 GB GPUs offload)
admin-button-expired = This button has expired. /admin opens a fresh panel.

## Broadcast
admin-broadcast-ask = Send the message to broadcast: text, or a photo with a caption. I will show it to you first. /cancel to stop.
admin-broadcast-unsupported = A broadcast is a text or a photo with a caption. Send one, or /cancel.
admin-btn-broadcast-send = 📣 Send to { $count ->
    [one] { $count } user
   *[other] { $count } users
}
admin-btn-broadcast-cancel = ✖️ Cancel
admin-broadcast-started = 📣 Broadcast #{ $id } is being sent to { $count ->
    [one] { $count } user
   *[other] { $count } users
} in the background. I will report when it is done.
admin-broadcast-cancelled = Broadcast cancelled.
admin-broadcast-not-draft = This broadcast was already sent or cancelled.
admin-broadcast-report = 📣 Broadcast #{ $id } finished: { $delivered } delivered, { $blocked } blocked the bot, { $failed } failed (of { $total }).

## The command menu of admin chats (only admins see it)
cmd-admin = Admin panel
cmd-stats = Statistics
cmd-queue = Queued and running jobs
cmd-pause = Stop taking jobs from the queue [reason]
cmd-resume = Take jobs from the queue again
cmd-ban = Ban a user: id or @username [reason]
cmd-unban = Unban a user
cmd-user = A user's profile and jobs
cmd-limits = Per-user, daily and queue limits
cmd-broadcast = Send a message to every user
cmd-models = Loaded models, load and unload
cmd-audit = The latest admin actions
cmd-grant = Give a user admin rights
cmd-revoke = Take admin rights away
