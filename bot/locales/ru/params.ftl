## Параметры в промпте (generation/inline_params.py)
param-unknown = Я не знаю параметра { $name }. Работают: { $known }.
param-twice = { $name } указан дважды: оставьте один.
param-missing-value = Для { $name } нужно значение, например { $example }.
param-ar-invalid = «{ $value }» — не формат. Пишите так: --ar 16:9; работают: { $choices }.
param-ar-unavailable = Формата { $value } нет. Работают: { $choices }.
param-seed-invalid = Сид — целое число от 0 до { $max }, а не «{ $value }».
param-no-too-long = В негативном промпте после --no { $length ->
    [one] { $length } символ
    [few] { $length } символа
   *[many] { $length } символов
}, а можно не больше { $limit }.
param-model-unknown = Я не знаю модели «{ $value }». Работают: { $choices }.
param-style-unknown = Я не знаю стиля «{ $value }». Работают: { $choices }.
param-n-invalid = --n — число картинок: от 1 до { $max }, а не «{ $value }».
param-prompt-missing = Параметры есть, а описания картинки нет: напишите его перед ними, например «маяк на рассвете --ar 16:9».
result-params = ⚙️ { $params }
help-params = Параметры после промпта, только для этой картинки:
    --ar 16:9 — формат ({ $ratios })
    --seed 42 — сид (тот же сид и настройки дают ту же картинку)
    --no text, watermark — негативный промпт: чего не должно быть на картинке
    --model flash — модель: 2.2, 3.1, flash, refiner
    --style anime — стиль (anime, uhd, kandinsky, pixel_art, oil_painting…)
    --n 4 — число картинок, от 1 до 4
    Пример: маяк на рассвете --ar 16:9 --seed 42 --no туман
