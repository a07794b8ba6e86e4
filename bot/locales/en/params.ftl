## Parameters typed into the prompt (generation/inline_params.py)
param-unknown = I don't know the parameter { $name }. These work: { $known }.
param-twice = { $name } is given twice: keep one.
param-missing-value = { $name } needs a value, for example { $example }.
param-ar-invalid = “{ $value }” is not an aspect ratio. Write it like --ar 16:9; these work: { $choices }.
param-ar-unavailable = The aspect ratio { $value } is not available. These work: { $choices }.
param-seed-invalid = The seed must be a whole number from 0 to { $max }, not “{ $value }”.
param-no-too-long = The negative prompt after --no is { $length ->
    [one] { $length } character
   *[other] { $length } characters
} long; the limit is { $limit }.
param-model-unknown = I don't know the model “{ $value }”. These work: { $choices }.
param-style-unknown = I don't know the style “{ $value }”. These work: { $choices }.
param-n-invalid = --n is the number of pictures: 1 to { $max }, not “{ $value }”.
param-prompt-missing = The parameters are there, but the picture's description is missing: write it before them, e.g. “a lighthouse at dawn --ar 16:9”.
result-params = ⚙️ { $params }
help-params = Parameters after the prompt, for this picture only:
    --ar 16:9 — aspect ratio ({ $ratios })
    --seed 42 — the seed (the same seed and settings give the same picture)
    --no text, watermark — negative prompt: what must not be in the picture
    --model flash — model: 2.2, 3.1, flash, refiner
    --style anime — style (anime, uhd, kandinsky, pixel_art, oil_painting…)
    --n 4 — number of pictures, 1 to 4
    Example: a lighthouse at dawn --ar 16:9 --seed 42 --no fog
