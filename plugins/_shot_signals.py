"""The picture signals :mod:`vidintel.plugins.local_shots` decides with: camera moves by phase correlation, local
and layout change, blends fitted between two shots, runs of flagged frames. Not a plugin (the leading underscore keeps
the registry from loading it)."""

from __future__ import annotations

import cv2
import numpy as np


def midpoint_windows(
    th: np.ndarray, max_residual: float, min_span: float, ks: tuple[int, ...] = (3, 6, 12), block: int = 2048
) -> list[tuple[int, int]]:
    """Frame windows where each frame is close to the mean of the frames k before and after it (a linear
    blend's signature), merged over several k; computed a block of frames at a time to bound memory."""
    n = len(th)
    windows = []
    for k in ks:
        if n <= 2 * k:
            continue
        ok = np.zeros(n, bool)
        for i in range(k, n - k, block):
            j = min(n - k, i + block)
            before, mid, after = th[i - k : j - k], th[i:j], th[i + k : j + k]
            span = np.abs(after - before).mean(axis=(1, 2, 3))
            resid = np.abs(before + after - 2 * mid).mean(axis=(1, 2, 3)) / 2
            ok[i:j] = (span >= min_span) & (resid < max_residual * np.maximum(span, 1e-6))
        windows += [(s - k, e + k) for s, e in runs(ok, max_gap=1) if e - s >= 1]
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(windows):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def camera_move(frames: np.ndarray) -> bool:
    """Whether most steps of about a sixth of the run show the same picture shifted (see :func:`moved`)."""
    n = len(frames)
    k = max(1, n // 6)
    steps = [moved(frames[i], frames[i + k]) for i in range(0, n - k, k)]
    return bool(steps) and sum(steps) > len(steps) / 2


def local_change(a: np.ndarray, b: np.ndarray) -> float:
    """Share of the 16x9 luma layout that changed by more than 12 levels, the global brightness change removed:
    a jump cut (same angle, the subject jumps) changes a region; a re-rendered or tinted picture changes no
    region that much (dev set: jump cut 0.17, keyframe and colour pops 0.06 or less)."""
    diff = layout(b) - layout(a)
    return float((np.abs(diff - diff.mean()) > 12).mean())


def moved(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether thumbnail ``b`` is thumbnail ``a`` shifted (a camera move), not another picture: after the shift
    phase correlation finds (sub-pixel), the inner parts differ by under half as much as unshifted."""
    la, lb = a[:, :, 0].astype(np.float32), b[:, :, 0].astype(np.float32)
    h, w = la.shape
    # no window argument: OpenCV 4.x returned another shift on the first call with one than on later calls
    (dx, dy), _ = cv2.phaseCorrelate(la, lb)
    if abs(dx) < 0.25 and abs(dy) < 0.25 or abs(dx) > w / 3 or abs(dy) > h / 3:
        return False
    shifted = cv2.warpAffine(
        la, np.array([[1, 0, dx], [0, 1, dy]], np.float32), (w, h), borderMode=cv2.BORDER_REPLICATE
    )
    mx, my = int(np.ceil(abs(dx))) + 1, int(np.ceil(abs(dy))) + 1
    inner = (slice(my, h - my), slice(mx, w - mx))
    if la[inner].size == 0:
        return False
    return float(np.abs(shifted[inner] - lb[inner]).mean()) < 0.5 * float(np.abs(la[inner] - lb[inner]).mean())


def layout(t: np.ndarray) -> np.ndarray:
    """A thumbnail's luma as a 16x9 layout: the picture's arrangement, without its texture."""
    return cv2.resize(t[:, :, 0].astype(np.float32), (16, 9), interpolation=cv2.INTER_AREA)


def layout_r(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two thumbnails' zero-mean 16x9 luma layouts: 1 for the same picture at any brightness."""
    la, lb = layout(a), layout(b)
    la -= la.mean()
    lb -= lb.mean()
    den = float(np.sqrt((la * la).sum() * (lb * lb).sum()))
    return float((la * lb).sum() / den) if den > 1e-6 else (1.0 if np.abs(la - lb).max() < 1 else 0.0)


def content_change(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(layout correlation, colour-histogram distance) between two 32x18 YUV thumbnails.

    The correlation is that of the zero-mean 16x9 luma layouts, so it ignores the brightness and sharpness a
    keyframe adds to the same picture; the histogram distance (half the L1 distance of 8x4x4 YUV histograms,
    0..1) is what a cut between two similar layouts still changes. A cut needs ``(1 - r) + distance`` of at
    least ``min_cut_content``: on the dev set (tests/plugins/real_footage) every real cut scores 1.0 or more, every
    I-frame pop and one-frame colour pop 0.3 or less (correlation >= 0.98), fast blurred pans about 0.8.
    """
    r = layout_r(a, b)

    def hist(t: np.ndarray) -> np.ndarray:
        h = cv2.calcHist(
            [np.ascontiguousarray(t, dtype=np.uint8)], [0, 1, 2], None, [8, 4, 4], [0, 256, 0, 256, 0, 256]
        )
        return h.ravel() / max(1.0, float(h.sum()))

    return r, 0.5 * float(np.abs(hist(a) - hist(b)).sum())


def blend_fit(frames: np.ndarray) -> tuple[float, float, np.ndarray]:
    """How well each frame is ``(1-alpha) * first + alpha * last``: (relative residual, largest alpha step, alpha).

    A cross-fade has a small residual and alpha rising in small steps; a cut hidden in the run shows as one
    big step, camera motion as a large residual.
    """
    first, last = frames[0].ravel(), frames[-1].ravel()
    delta = last - first
    norm = float(delta @ delta)
    if norm <= 0:
        return 1.0, 1.0, np.zeros(len(frames))
    x = frames.reshape(len(frames), -1) - first
    alpha = x @ delta / norm
    resid = np.abs(x - alpha[:, None] * delta).mean(axis=1)
    rel = float(resid[1:-1].mean() / np.abs(delta).mean()) if len(frames) > 2 else 0.0
    max_step = float(np.abs(np.diff(alpha)).max()) if len(frames) > 1 else 1.0
    return rel, max_step, alpha


def nanpercentile_rows(rows: np.ndarray, q: float, block: int = 4096) -> np.ndarray:
    """``np.nanpercentile(rows, q, axis=1)`` (linear), with 0 for all-NaN rows, sorting a block of rows at a time.

    numpy's own version loops over rows in Python when any NaN is present (10,000 frames took a second);
    blocks keep the sorted copy small when ``rows`` is a sliding-window view over an hour of frames.
    """
    out = np.empty(len(rows))
    for i in range(0, len(rows), block):
        part = np.sort(rows[i : i + block], axis=1)  # NaN sorts last
        last = np.maximum((~np.isnan(part)).sum(axis=1) - 1, 0)
        pos = last * (q / 100.0)
        lo = np.floor(pos).astype(int)
        a = np.take_along_axis(part, lo[:, None], axis=1)[:, 0]
        b = np.take_along_axis(part, np.minimum(lo + 1, last)[:, None], axis=1)[:, 0]
        out[i : i + block] = a + (b - a) * (pos - lo)
    return np.nan_to_num(out, nan=0.0)


def split_at(s: int, e: int, breaks: set[int], active: np.ndarray) -> list[tuple[int, int]]:
    """[s, e] cut at every break frame, each piece trimmed to start and end on active frames."""
    pieces, start = [], s
    for i in [b for b in sorted(breaks) if s <= b <= e] + [e + 1]:
        lo, hi = start, i - 1
        while lo <= hi and not active[lo]:
            lo += 1
        while hi >= lo and not active[hi]:
            hi -= 1
        if lo <= hi:
            pieces.append((lo, hi))
        start = i + 1
    return pieces


def runs(mask: np.ndarray, max_gap: int = 0) -> list[tuple[int, int]]:
    idx = np.nonzero(mask)[0]
    if len(idx) == 0:
        return []
    runs = []
    s = p = int(idx[0])
    for i in idx[1:]:
        i = int(i)
        if i - p > max_gap + 1:
            runs.append((s, p))
            s = i
        p = i
    runs.append((s, p))
    return runs


def fps(t: np.ndarray) -> float:
    steps = np.diff(t)
    steps = steps[steps > 0]
    return float(1.0 / np.median(steps)) if len(steps) else 25.0
