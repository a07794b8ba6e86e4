## /history
cmd-history = Your last pictures
history-empty = You have no pictures yet. Send me a description of one.
history-title = <b>Your pictures</b> (page { $page } of { $pages }), newest first:
history-btn-show = 🖼 { $n }
history-btn-again = 🔁 { $n }
history-btn-newer = « Newer
history-btn-older = Older »
history-nothing-to-show = This job has no pictures to show.
history-kind-img2img = Photo restyle
history-kind-restyle_depth = Photo restyle (shapes kept)
history-kind-style = Style transfer
history-kind-fuse = Fusion
history-kind-mix = Photo and text mix
history-kind-variations = Variations
history-kind-faceswap = Your face
history-kind-text2img = Picture
