"""A tiny transformers chat model made on the spot, for the `hf` backend tests (no download, no weights on disk
beforehand): one layer, random weights, a 12-word vocabulary, a chat template."""

from __future__ import annotations


def tiny_chat_model(folder):
    """A one-layer Llama with random weights and a 12-word vocabulary: a real transformers chat model that
    streams tokens in milliseconds (what it says is nonsense, which is the point: validation must catch it)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "</s>", "<pad>", "Russia", "Iran", "clause", "the", "[1]", "defense", "wars", "."]
    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>")
    fast.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                          "{% if add_generation_prompt %}assistant:{% endif %}")
    config = LlamaConfig(vocab_size=len(words), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=8192,
                         bos_token_id=1, eos_token_id=2, pad_token_id=3)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = 99  # never stop early, so there are tokens to stream
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder
