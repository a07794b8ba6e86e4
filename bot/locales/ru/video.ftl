## Анимация (/animate) и видео по тексту (/video)

## Commands
cmd-animate = Анимация до 4 сцен с движением камеры
cmd-video = Короткое видео по тексту

## /animate: где пользователь и как выйти
anim-step-prompt = 🎬 <b>Анимация</b> · сцена { $scene } из { $max } возможных, шаг 1 из 2
    Пришлите текст этой сцены: что на картинке. Каждая сцена длится { $seconds } с вместе с переходом к следующей.
    /cancel — выйти.
anim-step-camera = 🎬 <b>Анимация</b> · сцена { $scene } из { $max } возможных, шаг 2 из 2
    Как движется камера в этой сцене?
    /cancel — выйти.
anim-step-next = 🎬 <b>Анимация</b> · сцен: { $count } из { $max } возможных, { $seconds } с
    { $scenes }
    Добавьте сцену или соберите видео. /cancel — выйти.
anim-scene-line = { $number }. { $move }: { $prompt }
anim-btn-add = ➕ Добавить сцену
anim-btn-make = 🎬 Собрать видео
anim-full = Это максимум: { $max } сцены. Соберите видео или нажмите /cancel.
anim-text-expected = Пришлите сцену текстом или нажмите /cancel.
anim-camera-expected = Выберите движение камеры кнопками выше или нажмите /cancel.
anim-expired = Эта анимация уже не настраивается. Начните заново: /animate.

## Движения камеры (что делает камера)
cam-zoom_in = 🔍 Наезд
cam-zoom_out = 🔭 Отъезд
cam-pan_left = ⬅️ Влево
cam-pan_right = ➡️ Вправо
cam-pan_up = ⬆️ Вверх
cam-pan_down = ⬇️ Вниз
cam-rotate_cw = ↻ Поворот по часовой
cam-rotate_ccw = ↺ Поворот против часовой
cam-drift = 🌊 Плавный дрейф

## Ход работы
anim-progress-first = 🎬 Анимация: рисую первый кадр…
anim-progress = 🎬 Анимация: сцена { $scene } из { $scenes }, кадр { $frame } из { $total }
    { $bar }
video-loading = 🎞 Загружаю видеомодель (в первый раз это долго)…
video-progress = 🎞 Видео: шаг { $step } из { $total }
    { $bar }

## /video
video-usage = Напишите, каким должно быть видео, сразу после команды, например:
    /video рыжая лиса бежит по снегу в сумерках
    Видео длится 5 секунд; кнопка под ним сделает 10-секундное.
limit-video = У вас уже готовится видео ({ $limit }). Дождитесь его или нажмите /cancel.

## Результаты
anim-caption = 🎬 { $scenes }
    
    { $model } · { $seconds } с · seed { $seed }
video-caption = 🎞 { $prompt }
    
    { $model } · { $seconds } с · seed { $seed }
btn-video-10s = 🎞 10 секунд
btn-video-again = 🔁 Ещё раз

## Модели
model-kandinsky-5_0-video-lite-5s = Kandinsky 5.0 Video Lite, 5 с
model-kandinsky-5_0-video-lite-10s = Kandinsky 5.0 Video Lite, 10 с

## Ошибки
job-error-bad_scenes = ❌ Не удалось прочитать сцены анимации. Настройте её заново: /animate.
