## Face swap: /face, @me prompts, /forgetface
cmd-face = Your face in the pictures (then use @me in a prompt)
cmd-forgetface = Forget your face
face-send-photo = 🙂 Send me a photo of yourself: only your own face, alone in the picture, looking at the camera, not too small. Then write a prompt with @me, for example “@me at the bar, photo”.
    I keep the photo's Telegram file id and the position of your face (no description of it) until you send /forgetface, which deletes them and every picture made with them.
face-send-photo-again = I am waiting for a photo with a face. Send it as a photo, or /cancel.
face-none = 😕 I can't find a face on this photo. Please send another one, with the face clearly visible.
face-bad-photo = 😕 I can't open this picture. Please send a photo.
face-several = 😕 There are several faces on this photo. Send a photo with only your own face on it.
face-saved = ✅ Your face is saved: the photo's file id and where the face is, until you send /forgetface. Now write a prompt with @me, for example “@me at the bar, photo”.
face-needed = To draw @me, I need your face first: send /face.
face-forgotten = 🗑 Done: your face and everything about it is deleted.
face-nothing-to-forget = I have no face of yours saved.
face-stage-describing = 🔎 Looking at your face…
face-stage-drawing = 🎨 Drawing the scene…
face-stage-swapping = 🙂 Putting your face in…
face-stage-restoring = ✨ Polishing the face…
job-error-no_face_in_result = 😕 There was no face in the picture I drew, so I couldn't put yours in. Try again with a new seed, or mention a person in the prompt.
job-error-no_face = 😕 I can't find your face on the saved photo any more. Please send it again with /face.
face-small = 😕 The face on this photo is too small. Send a closer photo: your face should fill a good part of it.
face-turned = 😕 The face on this photo is turned or tilted too much. Send a photo where you look straight at the camera.
job-error-face_pose_mismatch = 😕 The face in the picture I drew is turned too differently from your photo, so your face would look broken there. Try again with a new seed, or describe a pose facing the camera.
job-error-face_model_unavailable = ❌ The face-swap models could not be loaded on the server. The administrator has to check the model files.
