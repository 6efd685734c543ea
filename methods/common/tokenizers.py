"""Tokenizers for the from-scratch models: one token per catalogue item, or a byte-level BPE.

Both return a `PreTrainedTokenizerFast` with `<pad>`, `<s>`, `</s>`, `<unk>` set, left padding (prompts are
left-padded for generation) and no post-processor (prompts carry whatever special tokens they need, so
``add_special_tokens`` is a no-op). Both round-trip through ``save_pretrained`` / ``AutoTokenizer.from_pretrained``.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]
ITEM_TOKEN_SPECIALS = SPECIAL_TOKENS + ["<hist>", "<rec>"]


def item_token(idx: int) -> str:
    """The rendering of item `idx` under ``item_repr = "item_token"``."""
    return f"<item_{idx}>"


def _wrap(tok: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        padding_side="left",
    )


def build_item_token_tokenizer(n_items: int) -> PreTrainedTokenizerFast:
    """A word-level tokenizer whose vocabulary is the specials, ``<hist>``, ``<rec>`` and one token per item.

    Text is split on whitespace only, so ``"<item_3> <item_7>"`` is two tokens and an item never merges with its
    neighbours. Any other word maps to ``<unk>``.

    Args:
        n_items: catalogue size; items are ``<item_0>`` .. ``<item_{n_items-1}>``.

    Returns:
        The tokenizer; ids are 0..5 for the specials and ``6 + idx`` for item ``idx``.
    """
    vocab = {t: i for i, t in enumerate(ITEM_TOKEN_SPECIALS + [item_token(i) for i in range(n_items)])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # WordPiece decoding without cleanup = join the tokens with single spaces (no "##" token exists here).
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    # Mark only the four specials as special: item tokens and <hist>/<rec> must survive skip_special_tokens.
    tok.add_special_tokens(SPECIAL_TOKENS)
    return _wrap(tok)


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `texts` (catalogue titles and prompt texts).

    The pre-tokenizer first isolates every ``"\\n"`` and then applies the GPT-2 byte-level regex. So ``"\\n"`` is
    always one token of its own (never merged into ``"\\n\\n"`` or with a neighbouring word), and a title that
    follows a newline is tokenised identically wherever it appears: the item trie relies on this.

    Args:
        texts: training corpus; read once.
        vocab_size: target vocabulary size (specials and the 256 byte symbols included).

    Returns:
        The trained tokenizer.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split("\n", behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte is a token: no <unk> ever
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    out = _wrap(tok)

    # Check the properties the trie relies on (cheap; fails loudly if the pre-tokenizer ever changes): "\n" is
    # one token, never merged with a neighbour, and what follows it tokenises independently of what precedes it.
    def enc(text: str) -> list[int]:
        return out(text, add_special_tokens=False)["input_ids"]

    nl, title = enc("\n"), enc("Portal 2: The Sequel!")
    after_text = enc("x \nPortal 2: The Sequel!")[-len(title) - 1 :]
    if len(nl) != 1 or enc("a\n\nb") != enc("a") + nl * 2 + enc("b") or after_text != nl + title:
        raise RuntimeError("BPE tokenizer: '\\n' is not a token of its own")
    return out
