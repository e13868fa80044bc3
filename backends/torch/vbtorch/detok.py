"""Incremental detokenization: text deltas from a growing list of token ids.

Each step decodes only a short window of recent tokens (the same offsets scheme
vLLM and TGI use), so the work per token does not grow with the output length.
A delta that would end inside a multi-byte character (U+FFFD) is held back until
the character completes.
"""

from __future__ import annotations

try:  # tokenizers >= 0.21: incremental decoding in Rust, about 1 us a token
    from tokenizers.decoders import DecodeStream
except ImportError:  # pragma: no cover - older tokenizers
    DecodeStream = None


class StreamDetokenizer:
    """StreamDetokenizer is Detokenizer over the tokenizers library's DecodeStream (fast tokenizers only)."""

    def __init__(self, tokenizer, skip_special_tokens: bool = True):
        self.tok = tokenizer._tokenizer
        self.ds = DecodeStream(skip_special_tokens=skip_special_tokens)

    def push(self, new_ids: list[int]) -> str:
        """Push appends token ids and returns the newly completed text."""
        out = []
        for t in new_ids:
            piece = self.ds.step(self.tok, t)
            if piece:
                out.append(piece)
        return "".join(out)

    def flush(self) -> str:
        """Flush returns nothing: DecodeStream emits text as soon as it is valid."""
        return ""


def make_detokenizer(tokenizer, context: list[int] | None = None):
    """Make_detokenizer picks the fastest incremental detokenizer the tokenizer allows."""
    if DecodeStream is not None and hasattr(tokenizer, "_tokenizer"):
        return StreamDetokenizer(tokenizer)
    return Detokenizer(tokenizer, context)


class Detokenizer:
    """Detokenizer turns appended token ids into text deltas."""

    def __init__(self, tokenizer, context: list[int] | None = None, skip_special_tokens: bool = True):
        self.tok = tokenizer
        self.skip = skip_special_tokens
        # the last prompt tokens give the first output tokens their context (leading spaces)
        self.ids: list[int] = list(context[-5:]) if context else []
        self.prefix = 0
        self.read = len(self.ids)

    def _decode(self, ids):
        return self.tok.decode(ids, skip_special_tokens=self.skip, clean_up_tokenization_spaces=False)

    def push(self, new_ids: list[int]) -> str:
        """Push appends token ids and returns the newly completed text."""
        self.ids.extend(new_ids)
        prefix_text = self._decode(self.ids[self.prefix : self.read])
        full = self._decode(self.ids[self.prefix :])
        if len(full) > len(prefix_text) and not full.endswith("\ufffd"):
            delta = full[len(prefix_text) :]
            self.prefix = self.read
            self.read = len(self.ids)
            return delta
        return ""

    def flush(self) -> str:
        """Flush returns any text held back (an unfinished character at the very end)."""
        prefix_text = self._decode(self.ids[self.prefix : self.read])
        full = self._decode(self.ids[self.prefix :])
        self.prefix = self.read = len(self.ids)
        return full[len(prefix_text) :] if len(full) > len(prefix_text) else ""
