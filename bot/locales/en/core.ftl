## Start, help, language
start-greeting = Hi, { $name }! I draw pictures with the Kandinsky models.
    Send me a description of a picture (any language, up to 1000 characters). Pick the model, aspect ratio and style in /settings.
help-text = What I can do:
    /start — greeting and the main keyboard
    /help — this list
    /settings — model, aspect ratio, style, negative prompt, beautification, images per request, editing model (Kandinsky 2.2 or 3.1)
    /language — English or Russian
    /cancel — cancel your queued jobs and stop the running one
    A photo with a caption — I redraw it as the caption says (or /restyle, /restyle_shapes to keep the shapes)
    /style — take the style of one photo for another; /fuse — fuse 2–4 photos; /mix — mix a photo with a text; /variations — variations of a photo
    /face — your face in the pictures: send a photo, then write @me in a prompt
    /forgetface — forget your face
    /history — your last pictures: see them again or draw them again
    /inpaint — a photo with this caption: paint over what to change. Under every picture: zoom out, expand, zoom in, upscale to 4K
    /animate — animate up to 4 scenes with camera moves; /video a text — a 5-second video
    Any other text is a prompt: I draw it.
help-models = Models (pick one in /settings):
help-model = • { $model }: { $modes }
help-model-no-negative = { $line } (no negative prompt)
mode-text2img = text to image
mode-img2img = restyle
mode-restyle_depth = keep the shapes
mode-style = style
mode-fuse = fuse
mode-mix = mix
mode-variations = variations
mode-faceswap = @me
mode-animate = animation (first frame)
mode-video = text to video
language-choose = Choose the language:
language-set = Language: English.

## Main keyboard
btn-settings = ⚙️ Settings
btn-help = ❓ Help
btn-cancel = ✖️ Cancel

## The command menu
cmd-start = Start and greeting
cmd-help = What the bot can do
cmd-settings = Model, aspect ratio, style and more
cmd-language = Switch the language
cmd-cancel = Cancel your jobs

## Bad input
prompt-empty = Send me a description of the picture in words.
prompt-only-emoji = Emoji alone are hard to draw: add a few words to describe the picture.
prompt-too-long = That prompt is { $length ->
    [one] { $length } character
   *[other] { $length } characters
} long; the limit is { $limit }. Please shorten it.
input-unsupported = I understand text and photos: send me a description of a picture, or a photo with a caption to redraw it. /help lists everything.
input-sticker = Nice sticker! I draw from words and photos, not stickers: send me a description of a picture, or a photo with a caption to redraw it. /help lists everything.
input-edited = I don't follow edits: send the new prompt as a new message.
callback-unknown = This button is no longer valid.
callback-not-yours = This button is not yours.
banned = You have been blocked from using this bot.
error-generic = Something went wrong on our side. Please try again later.

## Settings
settings-title = <b>Settings</b>
    Model: { $model }
    Aspect ratio: { $ratio } ({ $size })
    Style: { $style }
    Negative prompt: { $negative }
    Prompt beautification: { $beautify }
    Images per request: { $count }
    Seed: { $seed }
    Editing model: { $editing }
settings-none = none
settings-on = on
settings-off = off
settings-seed-random = random
settings-model = Model
settings-ratio = Aspect ratio
settings-style = Style
settings-negative = Negative prompt
settings-beautify = Beautification: { $state }
settings-count = Images per request
settings-seed-clear = Random seed again
settings-editing = Editing model
settings-choose-editing = Which model edits your photos (/fuse, /mix, /variations, /style and "Keep the shapes")?
editing-model-kandinsky-2_2 = Kandinsky 2.2 (lighter)
editing-model-kandinsky-3_1 = Kandinsky 3.1 (IP-Adapter, HED ControlNet)
settings-back = « Back
settings-close = Close
settings-choose-model = Choose the model:
settings-choose-ratio = Choose the aspect ratio:
settings-choose-style = Choose the style:
settings-choose-count = How many images per request?
settings-negative-menu = Negative prompt: { $negative }
    It lists what you do not want in the picture.
settings-negative-set = ✏️ Set
settings-negative-clear = 🗑 Clear
settings-saved = Saved.
negative-ask = Send the negative prompt (what the picture must not have), up to { $limit ->
    [one] { $limit } character
   *[other] { $limit } characters
}. /cancel to leave it as it is.
negative-saved = Negative prompt saved: { $negative }
negative-cleared = Negative prompt cleared.
negative-too-long = That is { $length ->
    [one] { $length } character
   *[other] { $length } characters
}; the limit is { $limit }. Send a shorter one.
negative-empty = Send the negative prompt as text, or /cancel.

## Models
model-kandinsky-2_2 = Kandinsky 2.2
model-kandinsky-3_1 = Kandinsky 3.1
model-kandinsky-3_1-flash = Kandinsky 3.1 Flash
model-kandinsky-3_1-refiner = Kandinsky 3.1 + Flash refiner
model-kandinsky-3_1-ip-adapter = Kandinsky 3.1 IP-Adapter
model-kandinsky-3_1-controlnet-hed = Kandinsky 3.1 HED ControlNet

## Styles
style-DEFAULT = No style
style-KANDINSKY = Kandinsky
style-UHD = Detailed photo
style-ANIME = Anime
style-DIGITAL_ART = Digital art
style-PIXEL_ART = Pixel art
style-CARTOON = Cartoon
style-PORTRAIT_PHOTO = Portrait photo
style-STUDIO_PHOTO = Studio photo
style-CYBERPUNK = Cyberpunk
style-RENDER_3D = 3D render
style-CLASSICISM = Classicism
style-OIL_PAINTING = Oil painting
style-PENCIL_DRAWING = Pencil drawing
style-KHOKHLOMA = Khokhloma
style-AIVAZOVSKY = Aivazovsky
style-MALEVICH = Malevich
style-PICASSO = Picasso

## Jobs
job-queued = ⏳ Queued, position { $position }.
job-queued-eta = ⏳ Queued, position { $position }: ready in about { $eta }.
eta-seconds = { $n ->
    [one] { $n } second
   *[other] { $n } seconds
}
eta-minutes = { $n ->
    [one] { $n } minute
   *[other] { $n } minutes
}
job-starting = 🎨 Generating…
job-progress = 🎨 Generating: step { $step }/{ $total }
    { $bar }
job-sending = 📤 Sending…
job-done = ✅ Done.
job-cancelled = ✖️ Cancelled.
job-failed = ❌ The job failed. Please try again later.
job-error-oom = ❌ Not enough GPU memory for this request. Try a smaller aspect ratio or fewer images.
job-error-crashed = ❌ This request stopped the generator several times in a row, so it was cancelled. Try a different prompt or other settings.
job-error-undeliverable = ❌ Telegram would not take the picture for this chat, so it could not be sent.
job-error-model_unavailable = ❌ This model is not available right now. Try another model in /settings.
job-flash-no-negative = Note: Flash draws without a negative prompt, so yours is not used.
btn-cancel-job = ✖️ Cancel
limit-user = You already have { $limit ->
    [one] { $limit } picture
   *[other] { $limit } pictures
} in progress. Wait for { $limit ->
    [one] it
   *[other] them
} or /cancel.
limit-total = The queue is full right now. Please try again in a few minutes.

## Results
result-caption = { $prompt }
    
    { $model } · { $style } · { $size } · seed { $seed }
result-album-buttons = ⬆️ { $count ->
    [one] { $count } image, seed
   *[other] { $count } images, seeds
} { $seeds }
btn-again = 🔁 Again
btn-variations = 🎲 Variations
btn-original = 📄 Original
btn-reuse-seed = 📌 Reuse seed
seed-reused = Seed { $seed } is now used for your next pictures. Change it back in /settings.
original-missing = The original file is no longer stored.

## Cancel
cancel-done = Cancelled: { $queued } queued, { $running } running.
cancel-nothing = You have nothing to cancel.
cancel-flow = Left the current step.
command-unknown = I don't know this command. /help lists what I can do.

## Per-image buttons and remix (handlers.results)
btn-remix = ✏️ Edit prompt
btn-image-variations = 🎲 { $n }
btn-image-original = 📄 { $n }
btn-image-seed = 📌 { $n }
btn-image-zoom = 🔭 { $n }
btn-image-upscale = ⬆️ { $n }
result-album-legend-canvas = 🔭 zoom out 2x · ⬆️ upscale x2 — of image 1, 2, …
result-album-legend = { $variations ->
    [yes] 🎲 variations · 📄 original · 📌 reuse the seed — of image 1, 2, …
   *[no] 📄 original · 📌 reuse the seed — of image 1, 2, …
}
remix-ask = ✏️ Send the new prompt: I'll draw it with the same model, settings and seed { $seed }. /cancel to leave it.
remix-expired = That result is gone; send a new prompt instead.
variations-caption = Variations of image { $n }
variations-note-style = Variations come from Kandinsky 2.2's picture embedding, so your style is not used for them.
variations-note-model = Variations of this picture run on { $model }: the picture's own model cannot draw them.
settings-language = 🌐 Language
settings-choose-lang = Choose the language:
job-loading-first = ⏳ Loading { $model } into memory (its first use since the bot started: this can take a few minutes)…
job-loading = ⏳ Loading { $model } into memory (about { $eta })…
