#!/usr/bin/env bash
# Regenerates the committed speech fixtures in vidintel_pipeline/media/sample_media/ with espeak-ng.
# espeak-ng is a Debian package (apt-get install espeak-ng); it is needed only to *remake* these files,
# never to build, test or run vidintel. Each WAV is 16 kHz mono 16-bit; its .txt holds the exact text spoken.
set -euo pipefail
out="$(cd "$(dirname "$0")/.." && pwd)/vidintel_pipeline/media/sample_media"
mkdir -p "$out"
say() {  # name voice speed text
  local name=$1 voice=$2 speed=$3; shift 3
  printf '%s\n' "$*" > "$out/$name.txt"
  espeak-ng -v "$voice" -s "$speed" -w "$out/$name.raw.wav" "$*"
  python3 - "$out/$name.raw.wav" "$out/$name.wav" <<'PY'
import sys, wave, numpy as np
src, dst = sys.argv[1:3]
with wave.open(src) as w:
    rate = w.getframerate(); x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64)
t = np.arange(int(len(x) * 16000 / rate)) * rate / 16000
y = np.interp(t, np.arange(len(x)), x)           # resample to 16 kHz (linear is fine for speech fixtures)
y = (y / max(1.0, np.abs(y).max()) * 26000).astype("<i2")
with wave.open(dst, "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000); w.writeframes(y.tobytes())
PY
  rm -f "$out/$name.raw.wav"
}
say speech_a en-us 150 "The quarterly revenue grew by twelve percent. Our new video pipeline finds every shot and every word."
say speech_b en-us+f3 140 "Welcome back to the studio. Today we are testing colour bars, black frames and a short fade."
say speech_c en-gb 150 "Please remember to check the weather forecast before the morning meeting."
say speech_de de 140 "Guten Morgen. Das Wetter ist heute schön, und wir treffen uns um neun Uhr im Büro."
ls -la "$out"
