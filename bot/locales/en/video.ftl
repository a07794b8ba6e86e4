## Animation (/animate) and text-to-video (/video)

## Commands
cmd-animate = Animate up to 4 scenes with camera moves
cmd-video = A short video from a text

## /animate: where the user is and how to leave
anim-step-prompt = 🎬 <b>Animation</b> · scene { $scene } of up to { $max }, step 1 of 2
    Send the text of this scene: what the picture shows. Each scene lasts { $seconds } seconds, the change to the next included.
    /cancel to leave.
anim-step-camera = 🎬 <b>Animation</b> · scene { $scene } of up to { $max }, step 2 of 2
    How does the camera move in this scene?
    /cancel to leave.
anim-step-next = 🎬 <b>Animation</b> · { $count } of up to { $max } scenes, { $seconds } s
    { $scenes }
    Add a scene, or make the video. /cancel to leave.
anim-scene-line = { $number }. { $move }: { $prompt }
anim-btn-add = ➕ Add a scene
anim-btn-make = 🎬 Make the video
anim-full = That is the most: { $max } scenes. Make the video, or /cancel.
anim-text-expected = Send the scene as text, or /cancel.
anim-camera-expected = Choose the camera move with the buttons above, or /cancel.
anim-expired = This animation is no longer being set up. Start again with /animate.

## Camera moves (what the camera does)
cam-zoom_in = 🔍 Zoom in
cam-zoom_out = 🔭 Zoom out
cam-pan_left = ⬅️ Pan left
cam-pan_right = ➡️ Pan right
cam-pan_up = ⬆️ Pan up
cam-pan_down = ⬇️ Pan down
cam-rotate_cw = ↻ Rotate clockwise
cam-rotate_ccw = ↺ Rotate counter-clockwise
cam-drift = 🌊 Drift

## Progress
anim-progress-first = 🎬 Animation: drawing the first frame…
anim-progress = 🎬 Animation: scene { $scene } of { $scenes }, frame { $frame } of { $total }
    { $bar }
video-loading = 🎞 Loading the video model (it takes a while the first time)…
video-progress = 🎞 Video: step { $step } of { $total }
    { $bar }

## /video
video-usage = Write the video after the command, for example:
    /video a red fox running through the snow at dusk
    The video lasts 5 seconds; the button under it makes a 10-second one.
limit-video = You already have { $limit } video in progress. Wait for it or /cancel.

## Results
anim-caption = 🎬 { $scenes }
    
    { $model } · { $seconds } s · seed { $seed }
video-caption = 🎞 { $prompt }
    
    { $model } · { $seconds } s · seed { $seed }
btn-video-10s = 🎞 10 seconds
btn-video-again = 🔁 Again

## Models
model-kandinsky-5_0-video-lite-5s = Kandinsky 5.0 Video Lite, 5 s
model-kandinsky-5_0-video-lite-10s = Kandinsky 5.0 Video Lite, 10 s

## Errors
job-error-bad_scenes = ❌ The animation's scenes could not be read. Please set it up again with /animate.
