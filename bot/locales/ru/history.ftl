## /history
cmd-history = Ваши последние картинки
history-empty = У вас пока нет картинок. Пришлите описание — нарисую.
history-title = <b>Ваши картинки</b> (страница { $page } из { $pages }), сначала новые:
history-btn-show = 🖼 { $n }
history-btn-again = 🔁 { $n }
history-btn-newer = « Новее
history-btn-older = Старше »
history-nothing-to-show = У этого задания нет картинок.
history-kind-img2img = Перерисовка фото
history-kind-restyle_depth = Перерисовка фото с сохранением форм
history-kind-style = Перенос стиля
history-kind-fuse = Смешивание
history-kind-mix = Фото и текст
history-kind-variations = Вариации
history-kind-faceswap = Ваше лицо
history-kind-text2img = Картинка
