"""Face appearances with OpenCV's bundled Haar cascade, sampled from the shared frame stream.

Faces rarely appear for a single frame, so the detector looks at one frame per second by default
(``sample_fps``; each look costs about 10 ms) on the 320 px analysis luma, and joins consecutive
sampled hits into appearances with start and end, each within half a sample period of the truth.
A sample whose picture has not changed since the last search (slides, static shots, freezes) reuses
that search's faces instead of searching again.
opencv-python-headless must stay below 5.0: 5.x ships no Haar cascades.
"""

from __future__ import annotations

import cv2

from vidintel_pipeline.media.frames import Frame
from vidintel_pipeline.plugin_api.contracts import PluginError, PluginInfo, PluginOptions, TemporalMarker
from vidintel_pipeline.plugin_api.frame_plugin import FramePlugin


class FacesOptions(PluginOptions):
    sample_fps: float = 1.0  # appearances start/end within one sample period
    min_neighbors: int = 5
    scale_factor: float = 1.2  # cascade pyramid step: 1.2 is ~2x faster than 1.1 for the same faces
    min_face_fraction: float = 0.1  # smallest face, as a fraction of the picture height
    max_gap_samples: int = 1  # missed samples tolerated inside one appearance
    same_picture_diff: float = 1.0  # thumbnail change (0-255) under which a sample repeats the last search's faces


class OpenCVFacesPlugin(FramePlugin):
    Options = FacesOptions
    options: FacesOptions  # the instance's validated options (built by the base class from Options)
    _cascade = None

    def get_plugin_info(self) -> PluginInfo:
        return PluginInfo(
            plugin_name="opencv_faces",
            plugin_version="1.0.0",
            supported_events=["object_appearance", "face_detection"],
            accuracy={"face_detection": 0.9},
            accuracy_source="tests/plugins/test_local_plugins.py: the drawn face's appearance found within 0.6 s; "
            "Haar cascades miss profiles",
            description="Frontal faces (OpenCV Haar cascade), sampled from the shared decode.",
        )

    @classmethod
    def cascade(cls) -> "cv2.CascadeClassifier":
        if cls._cascade is None:
            if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "data"):
                raise PluginError(
                    "this OpenCV build has no Haar cascades (opencv-python-headless must be < 5)", plugin="opencv_faces"
                )
            from cv2 import data as cv2_data  # the cascades' folder: a submodule cv2's stubs do not declare

            c = cv2.CascadeClassifier(cv2_data.haarcascades + "haarcascade_frontalface_default.xml")
            if c.empty():
                raise PluginError("haarcascade_frontalface_default.xml failed to load", plugin="opencv_faces")
            cls._cascade = c
        return cls._cascade

    @property
    def segment_context_s(self) -> float:
        return (self.options.max_gap_samples + 1) / self.options.sample_fps

    def begin(self, chunk, config) -> None:
        super().begin(chunk, config)
        self.cascade()
        self._next_t = chunk.start_s
        self._hits: list[tuple[float, int, float]] = []  # (time, faces, largest face fraction)
        self._searched: tuple | None = None  # (thumbnail, (faces, largest)) of the last search
        self._period = 1.0 / self.options.sample_fps

    def process(self, frame: Frame) -> None:
        if frame.time_s + 1e-6 < self._next_t:
            return
        self._next_t = frame.time_s + self._period
        thumb = frame.small()
        if (
            self._searched is not None
            and cv2.norm(thumb, self._searched[0], cv2.NORM_L1) / thumb.size < self.options.same_picture_diff
        ):
            self._hits.append((frame.time_s, *self._searched[1]))  # the picture has not changed: nor have its faces
            return
        min_side = max(16, int(frame.height * self.options.min_face_fraction))
        faces = self.cascade().detectMultiScale(
            frame.y,
            scaleFactor=self.options.scale_factor,
            minNeighbors=self.options.min_neighbors,
            minSize=(min_side, min_side),
        )
        biggest = max((h for (_, _, _, h) in faces), default=0) / frame.height
        self._hits.append((frame.time_s, len(faces), biggest))
        self._searched = (thumb, (len(faces), biggest))

    def end(self) -> list[TemporalMarker]:
        markers: list[TemporalMarker] = []
        run: list[tuple[float, int, float]] = []
        misses = 0
        for hit in self._hits + [(float("inf"), 0, 0.0)]:
            if hit[1] > 0:
                run.append(hit)
                misses = 0
                continue
            misses += 1
            if run and (misses > self.options.max_gap_samples or hit[0] == float("inf")):
                markers.append(self._marker(run))
                run = []
        return markers

    def _marker(self, run: list[tuple[float, int, float]]) -> TemporalMarker:
        seen = len(run)
        # an edge lies somewhere between the last sample without the face and the first with it:
        # report the midpoint, so start and end are each within half a sample period
        half = self._period / 2
        assert self.chunk is not None  # set by begin()
        start = max(self.chunk.start_s, run[0][0] - half)
        end = min(self.chunk.end_s, run[-1][0] + half)
        return TemporalMarker(
            type="object_appearance",
            start_s=round(start, 6),
            end_s=round(end, 6),
            label="face",
            confidence=round(min(0.95, 0.6 + 0.05 * seen), 3),
            plugin="opencv_faces",
            attributes={
                "max_faces": max(h[1] for h in run),
                "samples": seen,
                "largest_face_height": round(float(max(h[2] for h in run)), 3),
            },
        )
