"""A tiny random-weight causal LM in the beautifier's folder layout, for tests and offline runs.

``write_tiny_beautifier(folder)`` writes a Llama-architecture model of a few thousand parameters and a
word-level tokenizer (built in memory with the ``tokenizers`` library) with ``save_pretrained``, so the
beautifier loads it through the same ``AutoTokenizer`` / ``AutoModelForCausalLM.from_pretrained`` code
as ``Intel/neural-chat-7b-v3-1``.

With ``answer=...`` the weights are not random but wired so that greedy decoding after the instruction
writes exactly that answer (whitespace-separated words): the attention and MLP outputs are zero, so the
last hidden state is the current token's one-hot embedding, and the LM head maps each token of the answer
to the next one. The answer's words must then be distinct (each has one successor).
"""

from __future__ import annotations

import sys
from pathlib import Path

from prompting.beautify import INSTRUCTION_TEMPLATE

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]
_BASE_WORDS = (
    "a an the of in on with and at by cat dog fox red blue green snowy forest city night sky sea sun moon "
    "house tree river mountain portrait photo painting digital art style detailed light , . : ! ? \" ' "
    "Prompt: prompt Here is This I hope helps you like it"
).split()


def _vocab(answer_words: list[str]) -> dict[str, int]:
    words = list(SPECIAL_TOKENS)
    for w in (*INSTRUCTION_TEMPLATE.replace("{prompt}", "").split(), *_BASE_WORDS, *answer_words):
        if w not in words:
            words.append(w)
    return {w: i for i, w in enumerate(words)}


def build_tokenizer(answer_words: list[str] | None = None):  # -> PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab=_vocab(answer_words or []), unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # No decoder: decoding joins the words with spaces.
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        model_max_length=2048,
    )


def write_tiny_beautifier(folder: str | Path, answer: str | None = None, seed: int = 0) -> Path:
    """Write the tiny LM and its tokenizer to ``folder``; return the folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    answer_words = answer.split() if answer else []
    if len(set(answer_words)) != len(answer_words):
        raise ValueError("the words of a wired answer must be distinct")
    tokenizer = build_tokenizer(answer_words)
    vocab = tokenizer.get_vocab()
    size = len(vocab)
    hidden = -(-size // 8) * 8  # one-hot embeddings need hidden >= vocab
    config = LlamaConfig(
        vocab_size=size,
        hidden_size=hidden,
        intermediate_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=vocab["<s>"],
        eos_token_id=vocab["</s>"],
        pad_token_id=vocab["<pad>"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    if answer_words:
        with torch.no_grad():
            for layer in model.model.layers:
                layer.self_attn.o_proj.weight.zero_()
                layer.mlp.down_proj.weight.zero_()
            model.model.embed_tokens.weight.zero_()
            model.model.embed_tokens.weight[:, :size] = torch.eye(size)
            # The final RMSNorm turns the one-hot e_t into sqrt(hidden) * e_t, so W[next, t] = 1 wins.
            head = torch.zeros(size, hidden)
            last_template_word = INSTRUCTION_TEMPLATE.split()[-1]  # "Assistant:"
            chain = [last_template_word, *answer_words, "</s>"]
            successor = {vocab[a]: vocab[b] for a, b in zip(chain, chain[1:], strict=False)}
            for token, index in vocab.items():
                head[successor.get(index, vocab["</s>"]), index] = 1.0
            model.lm_head.weight.copy_(head)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


if __name__ == "__main__":
    # python -m prompting.tiny_llm FOLDER ["wired answer"]
    print(write_tiny_beautifier(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
