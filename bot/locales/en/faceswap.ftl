## Face swap: /face, @me prompts, /forgetface
cmd-face = Your face in the pictures (then use @me in a prompt)
cmd-forgetface = Forget your face
face-send-photo = 🙂 Send me a photo with one clear face: yours. Then write a prompt with @me, for example “@me at the bar, photo”.
face-send-photo-again = I am waiting for a photo with a face. Send it as a photo, or /cancel.
face-none = 😕 I can't find a face on this photo. Please send another one, with the face clearly visible.
face-bad-photo = 😕 I can't open this picture. Please send a photo.
face-several = There are several faces on this photo: I took the largest one.
face-saved = ✅ Your face is saved. Now write a prompt with @me, for example “@me at the bar, photo”. /forgetface deletes it.
face-needed = To draw @me, I need your face first: send /face.
face-forgotten = 🗑 Done: your face and everything about it is deleted.
face-nothing-to-forget = I have no face of yours saved.
face-stage-describing = 🔎 Looking at your face…
face-stage-drawing = 🎨 Drawing the scene…
face-stage-swapping = 🙂 Putting your face in…
face-stage-restoring = ✨ Polishing the face…
job-error-no_face_in_result = 😕 There was no face in the picture I drew, so I couldn't put yours in. Try again with a new seed, or mention a person in the prompt.
job-error-no_face = 😕 I can't find your face on the saved photo any more. Please send it again with /face.
