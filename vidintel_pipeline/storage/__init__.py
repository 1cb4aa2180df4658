"""Where everything lives: the layout (ids, every key and file name), the local and S3 stores, per-video locks."""
