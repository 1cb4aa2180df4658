"""How a video's analysis runs: plugin calls under a retry policy, merging, time segments, keyframes, the result
cache, speaker turns."""
