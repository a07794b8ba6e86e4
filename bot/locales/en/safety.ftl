## Prompt beautification and content safety (generation.beautify, generation.safety)
job-beautifying = ✨ Improving the prompt…
beautify-fell-back = ℹ️ Beautification was unavailable, so your own words were used.
result-caption-beautified = { $prompt }
    
    ✍️ Your words: { $original }
    
    { $model } · { $style } · { $size } · seed { $seed }
btn-plain = ✍️ Without beautification
prompt-blocked = I can't draw this request. Please describe something else.
job-error-prompt_blocked = ❌ I can't draw this request. Please describe something else.
job-censored = 🙈 The picture did not pass the content check, so I am not sending it. Try another prompt.
result-censored-some = { $count ->
    [one] 🙈 One picture did not pass the content check and was not sent.
   *[other] 🙈 { $count } pictures did not pass the content check and were not sent.
}
upload-censored = 🙈 The photo did not pass the content check, so I can't use it. Please send another one.
