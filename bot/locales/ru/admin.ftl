## Функции администраторов (handlers/admin). Тексты видят только администраторы, кроме помеченных «пользователи».

## Пользователи
queue-paused = ⏸ Новые картинки ненадолго приостановлены. Попробуйте позже.
queue-paused-reason = ⏸ Новые картинки ненадолго приостановлены: { $reason }
    Попробуйте позже.
limit-daily = Вы уже сделали { $limit ->
    [one] { $limit } картинку
    [few] { $limit } картинки
   *[many] { $limit } картинок
} за сегодня. Лимит обнулится в полночь UTC, через { $hours } ч { $minutes } мин.
admin-job-cancelled-owner = ✖️ Отменено администратором.
admin-unbanned-notice = Вы снова можете пользоваться ботом.

## Панель
admin-panel = <b>Панель администратора</b> ({ $role })
    Задач в работе: { $pending }
admin-panel-admins = Администраторы: { $admins }
admin-panel-owner-help = Как владелец: /grant и /revoke с id или @username пользователя (или кнопки в карточке пользователя).
admin-role-owner = владелец
admin-role-admin = администратор
admin-role-user = пользователь
admin-btn-stats = 📊 Статистика
admin-btn-queue = 📋 Очередь
admin-btn-limits = 🚦 Лимиты
admin-btn-models = 🧠 Модели
admin-btn-broadcast = 📣 Рассылка
admin-btn-user = 👤 Пользователь
admin-btn-audit = 📜 Журнал действий
admin-btn-pause = ⏸ Пауза
admin-btn-resume = ▶️ Продолжить
admin-btn-refresh = 🔄 Обновить
admin-btn-back = « Панель
admin-owner-only = Это могут только владельцы (ADMIN_IDS).
admin-state-paused = ⏸ Пауза: { $reason }
admin-yes = да
admin-no = нет
admin-unlimited = без ограничений
admin-duration-s = { $n } с
admin-duration-min = { $n } мин
admin-duration-h = { $h } ч { $m } мин

## Пользователи, баны, права
admin-user-ask = Пришлите id или @username пользователя либо перешлите его сообщение.
admin-target-missing = Кого? /{ $command } &lt;id или @username&gt; либо ответьте этой командой на пересланное сообщение пользователя.
admin-target-hidden = Пользователь скрывает аккаунт в пересланных сообщениях: используйте /{ $command } с его id или @username.
admin-user-not-found = Такого пользователя нет: он должен был запустить бота (/{ $command } &lt;id или @username&gt;).
admin-user-card = <b>Пользователь</b> { $user }
    Имя: { $name }
    Язык: { $language }
    Впервые: { $created }
    Последний раз: { $seen }
    Роль: { $role }
    Забанен: { $banned }
    Заблокировал бота: { $blocked }
admin-user-settings = <b>Настройки</b>: { $model }, { $ratio }, { $style }, { $count } за запрос, улучшение: { $beautify }
admin-user-counts = <b>Задачи</b>: { $total } ({ $details })
admin-user-moderation = <b>Отказы проверок безопасности</b>: { $details }
admin-user-last-jobs = <b>Последние задачи</b>:
admin-btn-ban = 🚫 Забанить
admin-btn-unban = ✅ Разбанить
admin-btn-grant = ⭐ Сделать админом
admin-btn-revoke = ✖️ Снять права админа
admin-banned = 🚫 { $user } забанен. Отменено: в очереди { $queued }, в работе { $running }.
admin-ban-already = { $user } уже забанен.
admin-ban-admin = Администратора нельзя забанить: сначала снимите с него права.
admin-unbanned = ✅ { $user } разбанен.
admin-unban-not-banned = { $user } не забанен.
admin-granted = ⭐ { $user } теперь администратор.
admin-grant-already = { $user } уже администратор.
admin-grant-owner = { $user } — владелец.
admin-grant-banned = { $user } забанен: сначала разбаньте.
admin-revoked = { $user } больше не администратор.
admin-revoke-not-admin = { $user } не администратор.
admin-revoke-owner = { $user } — владелец: владельцы задаются в ADMIN_IDS, их права снять нельзя.
admin-audit-title = <b>Журнал действий</b> (сначала новые)
admin-audit-empty = Пока пусто.

## Статистика
admin-stats-users = <b>Пользователи</b>: { $total } · активны сегодня { $today } · за 7 дней { $week } · забанены { $banned } · заблокировали бота { $blocked }
admin-stats-today = сегодня (UTC)
admin-stats-week = за 7 дней
admin-stats-jobs = <b>Задачи, { $title }</b>: { $total }
    по моделям: { $models }
    по режимам: { $modes }
    по статусам: { $statuses }
    ошибки: { $failed } · отцензурено: { $censored }
admin-stats-timing-title = <b>Медиана ожидания в очереди / времени генерации</b> (7 дней)
admin-stats-timing = { $model }: { $wait } / { $generation } ({ $jobs ->
    [one] { $jobs } задача
    [few] { $jobs } задачи
   *[many] { $jobs } задач
})
admin-stats-moderation = <b>Отказы проверок безопасности</b>
    сегодня: { $today }
    за 7 дней: { $week }
admin-stats-queue = <b>Сейчас</b>: в очереди { $queued }, в работе { $running }

## Очередь
admin-queue-title = <b>Задачи в работе</b>: { $count }
admin-queue-empty = Очередь пуста.
admin-queue-job = #{ $id } { $status } · { $user } · { $mode } · { $model } · { $age }
admin-btn-cancel-job = ✖️ #{ $id }
admin-job-cancelled = Задача #{ $id } отменена.
admin-job-not-pending = Эта задача уже не в очереди и не в работе.
admin-paused = ⏸ Пауза: новые задачи из очереди не берутся, новые запросы отклоняются. Причина: { $reason }. Ждут: { $queued }. /resume — продолжить.
admin-resumed = ▶️ Продолжаем. Ждут: { $queued }.
admin-not-paused = Очередь не на паузе.

## Лимиты
admin-limits = <b>Лимиты</b>
    Задач в работе на пользователя: { $user }
    Задач на пользователя в день (UTC): { $daily }
    Задач в работе всего: { $queue }
    
    Изменить: /limits user &lt;n&gt; · /limits daily &lt;n|off&gt; · /limits queue &lt;n&gt; или кнопками.
admin-limits-usage = Формат: /limits user &lt;1-100&gt; · /limits daily &lt;1-100000|off&gt; · /limits queue &lt;1-100000&gt;
admin-limit-set = Сохранено: { $name } = { $value }. Действует со следующего запроса.
admin-btn-limit-user = на польз.: { $value }
admin-btn-limit-daily = в день: { $value }
admin-btn-limit-queue = очередь: { $value }

## Модели
admin-models-title = <b>Модели</b>
admin-models-unavailable = У этого процесса бота нет бэкенда генерации, которым можно управлять.
admin-model-loaded = ✅ { $model }: загружена на { $device }, { $memory }
admin-model-unloaded = ▫️ { $model }: не загружена
admin-btn-load = 🔥 Загрузить / прогреть { $model }
admin-btn-unload = ⏏ Выгрузить { $model }
admin-model-loading = Загружаю { $model }…
admin-model-unloading = Выгружаю { $model }…
admin-model-failed = ❌ { $model }: { $error }
# Что реестр моделей знает о модели (generation/registry.py), под её строкой в /models.
admin-model-facts = ↳ { $family } · { $memory } · { $steps } · guidance { $guidance } · негативный промпт: { $negative }
    ↳ режимы: { $modes }
admin-model-steps = { $steps ->
    [one] { $steps } шаг
    [few] { $steps } шага
   *[many] { $steps } шагов
}
admin-model-steps-fixed = { $steps } (фиксировано)
admin-model-no-guidance = нет
admin-memory-medium = помещается в GPU на 16 ГБ
admin-memory-large = около 28 ГБ видеопамяти (на GPU с 24 ГБ — с выгрузкой)
admin-button-expired = Эта кнопка устарела. /admin откроет свежую панель.

## Рассылка
admin-broadcast-ask = Пришлите сообщение для рассылки: текст или фото с подписью. Сначала я покажу его вам. /cancel — отменить.
admin-broadcast-unsupported = Рассылка — это текст или фото с подписью. Пришлите его или /cancel.
admin-btn-broadcast-send = 📣 Отправить { $count ->
    [one] { $count } пользователю
   *[other] { $count } пользователям
}
admin-btn-broadcast-cancel = ✖️ Отмена
admin-broadcast-started = 📣 Рассылка #{ $id } отправляется { $count ->
    [one] { $count } пользователю
   *[other] { $count } пользователям
} в фоне. Я сообщу, когда закончу.
admin-broadcast-cancelled = Рассылка отменена.
admin-broadcast-not-draft = Эта рассылка уже отправлена или отменена.
admin-broadcast-report = 📣 Рассылка #{ $id } завершена: доставлено { $delivered }, заблокировали бота { $blocked }, ошибок { $failed } (из { $total }).

## Меню команд в чатах администраторов (видят только они)
cmd-admin = Панель администратора
cmd-stats = Статистика
cmd-queue = Задачи в очереди и в работе
cmd-pause = Перестать брать задачи из очереди [причина]
cmd-resume = Снова брать задачи из очереди
cmd-ban = Забанить: id или @username [причина]
cmd-unban = Разбанить пользователя
cmd-user = Профиль и задачи пользователя
cmd-limits = Лимиты: на пользователя, в день, очередь
cmd-broadcast = Разослать сообщение всем пользователям
cmd-models = Загруженные модели, загрузка и выгрузка
cmd-audit = Последние действия администраторов
cmd-grant = Дать пользователю права администратора
cmd-revoke = Забрать права администратора
