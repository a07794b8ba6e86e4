## Image editing (handlers/editing)

## Commands
cmd-restyle = Redraw a photo as your text says
cmd-restyle_shapes = Redraw a photo keeping its shapes
cmd-style = Take the style of one photo for another
cmd-fuse = Fuse 2–4 photos into one picture
cmd-mix = Mix a photo with a text
cmd-variations = Variations of a photo

## Steps: where the user is and how to leave
edit-restyle-step-photo = 🖌 <b>Restyle</b> · step 1 of 2
    Send the photo (as a photo or as a PNG, JPEG or WebP file). Add a caption to say what it should become.
    /cancel to leave.
edit-restyle-step-text = 🖌 <b>Restyle</b> · step 2 of 2
    Now send the text: what should the photo become? For example: “a watercolour painting”.
    /cancel to leave.
edit-restyle-step-strength = 🖌 <b>Restyle</b> · last step: choose the strength. /cancel to leave.
edit-shapes-step-photo = 🧱 <b>Restyle keeping the shapes</b> · step 1 of 2
    Send the photo (as a photo or as a PNG, JPEG or WebP file). Add a caption to say what it should become.
    /cancel to leave.
edit-shapes-step-text = 🧱 <b>Restyle keeping the shapes</b> · step 2 of 2
    Now send the text: what should the photo become?
    /cancel to leave.
edit-shapes-step-strength = 🧱 <b>Restyle keeping the shapes</b> · last step: choose the strength. /cancel to leave.
edit-style-step-content = 🎭 <b>Style from a photo</b> · step 1 of 3
    Send the content photo: its layout is kept.
    /cancel to leave.
edit-style-step-style = 🎭 <b>Style from a photo</b> · step 2 of 3
    Now send the style photo: the result takes its look.
    /cancel to leave.
edit-style-step-weight = 🎭 <b>Style from a photo</b> · step 3 of 3
    How much of the style photo should the result take?
    /cancel to leave.
edit-fuse-step-photos = 🧬 <b>Fusion</b> · step 1 of 2
    Send 2 to { $max } photos: one album, or one by one and then press “Done” (or send /done).
    /cancel to leave.
edit-fuse-step-weight = 🧬 <b>Fusion</b> · step 2 of 2
    How much of each photo? (The first photo’s share, then the second’s.)
    /cancel to leave.
edit-mix-step-photo = 🔀 <b>Photo + text</b> · step 1 of 3
    Send the photo (a caption is taken as the text).
    /cancel to leave.
edit-mix-step-text = 🔀 <b>Photo + text</b> · step 2 of 3
    Now send the text to mix with the photo.
    /cancel to leave.
edit-mix-step-weight = 🔀 <b>Photo + text</b> · step 3 of 3: how much of each? /cancel to leave.
edit-variations-step-photo = 🎲 <b>Variations</b>
    Send the photo: I will draw variations of it.
    /cancel to leave.

edit-restyle-choose = { $step }
    Text: <i>{ $prompt }</i>
    Light keeps most of the photo, strong redraws more. “Keep the shapes” keeps outlines of people and objects. A new text or photo replaces this one.
edit-shapes-choose = { $step }
    Text: <i>{ $prompt }</i>
    Light keeps most of the photo, strong redraws more. A new text or photo replaces this one.
edit-mix-choose = { $step }
    Text: <i>{ $prompt }</i>
edit-fuse-got-more = 🧬 Photos: { $count } of { $max }. Send at least one more.
edit-fuse-got = 🧬 Photos: { $count } of { $max }. Send more or press “Done”.
edit-fuse-need-more = Fusion needs at least { $min } photos; I have { $count }. Send another one.
edit-unexpected = I am waiting for something else here.
    { $step }
edit-flow-expired = The previous editing step was left for 10 minutes, so it was closed. Start again when you like.
edit-button-stale = This step is over. Start again with the command.

## Buttons
edit-strength-light = Light
edit-strength-medium = Medium
edit-strength-strong = Strong
edit-btn-keep-shapes = 🧱 Keep the shapes
edit-btn-style-weight = Style { $percent }%
edit-btn-variations-of-photo = 🎲 Variations of this photo
edit-word-done = done
edit-btn-done = ✅ Done
edit-btn-fuse-weight = 1st { $first }% · 2nd { $second }%
edit-btn-mix-weight = 🖼 Photo { $first }% · 📝 Text { $second }%

## Refused inputs (nothing is queued)
edit-reject-not_image = This is not a picture I can edit. Send a photo, or a PNG, JPEG or WebP file.
edit-reject-animated = Videos and animated images cannot be edited. Send a still photo.
edit-reject-sticker = Stickers cannot be edited. Send a photo.
edit-reject-too_small = The picture is too small: each side must be at least { $min_side } px.
edit-reject-bad_ratio = The picture is too long and narrow: the sides may differ at most { $ratio } times (1:{ $ratio }).
edit-reject-too_big = The file is over { $limit_mb } MB, the most a bot can download. Send a smaller one (or as a photo).
edit-reject-too_many_pixels = The picture is too large: at most { $max_mp } megapixels ({ $max_jpeg_mp } for a JPEG). Send a smaller one (or as a photo).
edit-reject-one_photo = One photo here, please, not an album.
edit-reject-too_many = Fusion takes at most { $max_photos } photos.

## Captions and notes
edit-caption-style = Style from a photo ({ $percent }% style)
edit-caption-fuse = Fusion of { $count } photos
edit-caption-variations = Variations
edit-note-img2img-fallback = Your model cannot redraw photos, so { $model } does it.
job-error-input_missing = ❌ I could not download the photo of this request any more. Please send it again.
job-error-input_invalid = ❌ The photo of this request can no longer be read. Please send it again.
btn-lighter = 🔅 Lighter
btn-stronger = 🔆 Stronger
btn-keep-shapes = 🧱 Keep the shapes
edit-note-strength = Strength: { $strength } (remembered). 🔅 Lighter and 🔆 Stronger under the result redo it.
edit-caption-fuse-text = Fusion of { $count } photos and “{ $prompt }”
btn-more-photo = 🖼 More photo
btn-more-text = 📝 More text
btn-more-first = ◀️ More of photo 1
btn-more-second = More of photo 2 ▶️
edit-note-mix-remembered = Photo { $image }% · text { $text }% (your last choice); the buttons under the result change it.
edit-note-fuse-remembered = Photo 1: { $first }% · photo 2: { $second }% (your last choice); the buttons under the result change it.
result-note-edges-canny = ℹ️ The outlines were traced with a simple edge filter (Canny): the HED edge detector is not installed on this server.
