"""What happens to a prompt and to images around generation: LLM beautification (``beautify``), the
text blocklist and the NSFW image check (``safety``), and :class:`prompting.guard.ContentGuard` that
joins them as one step of the job flow. Imports ``generation`` only (the GPU budget it shares)."""
