"""Data: the Parameter Golf shard format, token streams, SentencePiece tokenizers, BPB byte accounting, and
building, fetching and inspecting shard directories. Heavy imports (sentencepiece, torch, huggingface_hub)
happen inside the functions that need them."""
