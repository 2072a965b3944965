"""How one text is read: the video's latent length and the units of its keys."""

from __future__ import annotations

from dataclasses import dataclass

from .. import frames as fm
from .errors import PromptScheduleError
from .limits import checked_number

KEY_UNITS = ("latent", "pixel", "seconds")


@dataclass(frozen=True)
class Reading:
    frames: int  # latent frames of the video
    fps: float = 16.0
    key_unit: str = "pixel"  # unit of keyframe-line keys

    @property
    def pixel_frames(self) -> int:
        return fm.pixel_count(self.frames)

    def end_text(self) -> str:
        seconds = fm.seconds_of_pixels(self.pixel_frames, self.fps)
        return (f"{self.frames} latent frames = {self.pixel_frames} pixel frames = {seconds:.2f} s at "
                f"{self.fps:g} fps")

    def latent_of_time(self, seconds: float, where: str) -> int:
        """Latent frame holding the pixel frame shown at `seconds`; refused past the video's end."""
        latent = fm.latent_of_seconds(seconds, self.fps)
        if latent >= self.frames:
            raise PromptScheduleError(f"{where}: {seconds:g} s is latent frame {latent}, past the end of the video "
                                      f"({self.end_text()}). Fix: use an earlier time or make the video longer")
        return latent

    def stop_of_time(self, seconds: float) -> int:
        """Latent frame where a span ending at `seconds` stops (exclusive); a time at or after the last
        pixel frame's time means the end of the video."""
        if fm.pixel_of_seconds(seconds, self.fps) >= self.pixel_frames - 1:
            return self.frames
        return fm.latent_of_seconds(seconds, self.fps)

    def latent_of_key(self, key: str, where: str) -> int:
        """Latent frame of a 0-based keyframe key in `key_unit`; refused when negative, fractional
        (frame units) or past the video's end."""
        value = float(checked_number(key, where, "key"))
        if value < 0:
            raise PromptScheduleError(f"{where}: key {key} is negative. Fix: keys count from 0")
        if self.key_unit == "seconds":
            latent = fm.latent_of_seconds(value, self.fps)
        elif not value.is_integer():
            raise PromptScheduleError(f"{where}: key {key} is not a whole {self.key_unit} frame. Fix: use a whole "
                                      "number, or set the key unit to seconds")
        else:
            latent = int(value) if self.key_unit == "latent" else fm.latent_of_pixel(int(value))
        if latent >= self.frames:
            raise PromptScheduleError(
                f"{where}: key {key} ({self.key_unit}) is latent frame {latent}, past the end of the video "
                f"({self.end_text()}). Fix: lower the key, check the key unit, or make the video longer")
        return latent
