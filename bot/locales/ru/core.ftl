## Start, help, language
start-greeting = Привет, { $name }! Я рисую картинки моделями Kandinsky.
    Пришлите описание картинки (на любом языке, до 1000 символов). Модель, формат и стиль выбираются в /settings.
help-text = Что я умею:
    /start — приветствие и основная клавиатура
    /help — этот список
    /settings — модель, формат, стиль, негативный промпт, улучшение промпта, число картинок, модель для редактирования (Kandinsky 2.2 или 3.1)
    /language — русский или английский
    /cancel — отменить ваши задания в очереди и остановить текущее
    Фото с подписью — перерисую его по подписи (или /restyle, /restyle_shapes — с сохранением форм)
    /style — перенести стиль одного фото на другое; /fuse — смешать 2–4 фото; /mix — смешать фото с текстом; /variations — вариации фото
    /face — ваше лицо на картинках: пришлите фото, затем пишите @me в промпте
    /forgetface — забыть ваше лицо
    /history — ваши последние картинки: посмотреть или нарисовать снова
    /inpaint — фото с этой подписью: закрасьте то, что нужно изменить. Под каждой картинкой: отдалить, расширить, приблизить, увеличить до 4K
    /animate — анимация до 4 сцен с движением камеры; /video текст — видео на 5 секунд
    Любой другой текст — это промпт: я его нарисую.
help-models = Модели (выбор в /settings):
help-model = • { $model }: { $modes }
help-model-no-negative = { $line } (без негативного промпта)
mode-text2img = текст в картинку
mode-img2img = перерисовка
mode-restyle_depth = с сохранением форм
mode-style = стиль
mode-fuse = слияние
mode-mix = смешивание
mode-variations = вариации
mode-faceswap = @me
mode-animate = анимация (первый кадр)
mode-video = видео по тексту
language-choose = Выберите язык:
language-set = Язык: русский.

## Main keyboard
btn-settings = ⚙️ Настройки
btn-help = ❓ Помощь
btn-cancel = ✖️ Отмена

## The command menu
cmd-start = Начало и приветствие
cmd-help = Что умеет бот
cmd-settings = Модель, формат, стиль и другое
cmd-language = Сменить язык
cmd-cancel = Отменить задания

## Bad input
prompt-empty = Пришлите описание картинки словами.
prompt-only-emoji = Одни эмодзи нарисовать трудно: добавьте несколько слов.
prompt-too-long = В промпте { $length ->
    [one] { $length } символ
    [few] { $length } символа
   *[many] { $length } символов
}, а можно не больше { $limit }. Сократите его, пожалуйста.
input-unsupported = Я понимаю текст и фото: пришлите описание картинки или фото с подписью, чтобы его перерисовать. /help — всё, что я умею.
input-sticker = Классный стикер! Но я рисую по словам и фото, а не по стикерам: пришлите описание картинки или фото с подписью, чтобы его перерисовать. /help — всё, что я умею.
input-edited = Я не слежу за правками: пришлите новый промпт новым сообщением.
callback-unknown = Эта кнопка больше не действует.
callback-not-yours = Это не ваша кнопка.
banned = Вам закрыт доступ к этому боту.
error-generic = У нас что-то сломалось. Попробуйте позже.

## Settings
settings-title = <b>Настройки</b>
    Модель: { $model }
    Формат: { $ratio } ({ $size })
    Стиль: { $style }
    Негативный промпт: { $negative }
    Улучшение промпта: { $beautify }
    Картинок за раз: { $count }
    Сид: { $seed }
    Модель для редактирования: { $editing }
settings-none = нет
settings-on = вкл
settings-off = выкл
settings-seed-random = случайный
settings-model = Модель
settings-ratio = Формат
settings-style = Стиль
settings-negative = Негативный промпт
settings-beautify = Улучшение: { $state }
settings-count = Картинок за раз
settings-seed-clear = Снова случайный сид
settings-editing = Модель для редактирования
settings-choose-editing = Какая модель редактирует ваши фото (/fuse, /mix, /variations, /style и «Сохранить формы»)?
editing-model-kandinsky-2_2 = Kandinsky 2.2 (легче)
editing-model-kandinsky-3_1 = Kandinsky 3.1 (IP-Adapter, HED ControlNet)
settings-back = « Назад
settings-close = Закрыть
settings-choose-model = Выберите модель:
settings-choose-ratio = Выберите формат:
settings-choose-style = Выберите стиль:
settings-choose-count = Сколько картинок за раз?
settings-negative-menu = Негативный промпт: { $negative }
    Это то, чего не должно быть на картинке.
settings-negative-set = ✏️ Задать
settings-negative-clear = 🗑 Очистить
settings-saved = Сохранено.
negative-ask = Пришлите негативный промпт (чего не должно быть на картинке), до { $limit ->
    [one] { $limit } символа
   *[other] { $limit } символов
}. /cancel — оставить как есть.
negative-saved = Негативный промпт сохранён: { $negative }
negative-cleared = Негативный промпт очищен.
negative-too-long = Здесь { $length ->
    [one] { $length } символ
    [few] { $length } символа
   *[many] { $length } символов
}, а можно не больше { $limit }. Пришлите покороче.
negative-empty = Пришлите негативный промпт текстом или /cancel.

## Models
model-kandinsky-2_2 = Kandinsky 2.2
model-kandinsky-3_1 = Kandinsky 3.1
model-kandinsky-3_1-flash = Kandinsky 3.1 Flash
model-kandinsky-3_1-refiner = Kandinsky 3.1 + Flash-рефайнер
model-kandinsky-3_1-ip-adapter = Kandinsky 3.1 IP-Adapter
model-kandinsky-3_1-controlnet-hed = Kandinsky 3.1 HED ControlNet

## Styles
style-DEFAULT = Без стиля
style-KANDINSKY = Кандинский
style-UHD = Детальное фото
style-ANIME = Аниме
style-DIGITAL_ART = Цифровая живопись
style-PIXEL_ART = Пиксель-арт
style-CARTOON = Мультфильм
style-PORTRAIT_PHOTO = Портретное фото
style-STUDIO_PHOTO = Студийное фото
style-CYBERPUNK = Киберпанк
style-RENDER_3D = 3D-рендер
style-CLASSICISM = Классицизм
style-OIL_PAINTING = Масляная живопись
style-PENCIL_DRAWING = Карандашный рисунок
style-KHOKHLOMA = Хохлома
style-AIVAZOVSKY = Айвазовский
style-MALEVICH = Малевич
style-PICASSO = Пикассо

## Jobs
job-queued = ⏳ В очереди, место { $position }.
job-queued-eta = ⏳ В очереди, место { $position }: будет готово примерно через { $eta }.
eta-seconds = { $n ->
    [one] { $n } секунду
    [few] { $n } секунды
   *[many] { $n } секунд
}
eta-minutes = { $n ->
    [one] { $n } минуту
    [few] { $n } минуты
   *[many] { $n } минут
}
job-starting = 🎨 Рисую…
job-progress = 🎨 Рисую: шаг { $step }/{ $total }
    { $bar }
job-sending = 📤 Отправляю…
job-done = ✅ Готово.
job-cancelled = ✖️ Отменено.
job-failed = ❌ Не получилось. Попробуйте позже.
job-error-oom = ❌ Не хватило памяти GPU. Выберите формат поменьше или меньше картинок.
job-error-crashed = ❌ Это задание несколько раз подряд останавливало генератор, поэтому оно отменено. Попробуйте другой промпт или другие настройки.
job-error-undeliverable = ❌ Telegram не принял картинку для этого чата, поэтому её не удалось отправить.
job-error-model_unavailable = ❌ Эта модель сейчас недоступна. Выберите другую в /settings.
job-flash-no-negative = Заметка: Flash рисует без негативного промпта, ваш не используется.
btn-cancel-job = ✖️ Отменить
limit-user = У вас уже { $limit ->
    [one] { $limit } картинка
    [few] { $limit } картинки
   *[many] { $limit } картинок
} в работе. Дождитесь { $limit ->
    [1] её
   *[other] их
} или нажмите /cancel.
limit-total = Очередь сейчас переполнена. Попробуйте через несколько минут.

## Results
result-caption = { $prompt }
    
    { $model } · { $style } · { $size } · сид { $seed }
result-album-buttons = ⬆️ { $count ->
    [one] { $count } картинка, сид
    [few] { $count } картинки, сиды
   *[many] { $count } картинок, сиды
} { $seeds }
btn-again = 🔁 Ещё раз
btn-variations = 🎲 Вариации
btn-original = 📄 Оригинал
btn-reuse-seed = 📌 Этот сид
seed-reused = Сид { $seed } будет использоваться для следующих картинок. Вернуть случайный можно в /settings.
original-missing = Оригинал больше не хранится.

## Cancel
cancel-done = Отменено: в очереди — { $queued }, в работе — { $running }.
cancel-nothing = Отменять нечего.
cancel-flow = Вышли из текущего шага.
command-unknown = Такой команды я не знаю. Список команд — /help.

## Кнопки для каждой картинки и ремикс (handlers.results)
btn-remix = ✏️ Изменить промпт
btn-image-variations = 🎲 { $n }
btn-image-original = 📄 { $n }
btn-image-seed = 📌 { $n }
btn-image-zoom = 🔭 { $n }
btn-image-upscale = ⬆️ { $n }
result-album-legend-canvas = 🔭 отдалить 2x · ⬆️ увеличить x2 — для картинки 1, 2, …
result-album-legend = { $variations ->
    [yes] 🎲 вариации · 📄 оригинал · 📌 этот сид — для картинки 1, 2, …
   *[no] 📄 оригинал · 📌 этот сид — для картинки 1, 2, …
}
remix-ask = ✏️ Пришлите новый промпт: нарисую его той же моделью, с теми же настройками и сидом { $seed }. /cancel — оставить как есть.
remix-expired = Этого результата больше нет; пришлите новый промпт.
variations-caption = Вариации картинки { $n }
variations-note-style = Вариации строятся по эмбеддингу картинки в Kandinsky 2.2, поэтому ваш стиль для них не используется.
variations-note-model = Вариации этой картинки рисует { $model }: её собственная модель так не умеет.
settings-language = 🌐 Язык
settings-choose-lang = Выберите язык:
job-loading-first = ⏳ Загружаю { $model } в память (первый раз после запуска бота: это может занять несколько минут)…
job-loading = ⏳ Загружаю { $model } в память (примерно { $eta })…
