"""Template-browser thumbnails: each workflow's story as a timeline a person reads at card size.

The picture shows the workflow's title (templates.py) and, over a seconds axis, one coloured band per
prompt segment of its FrameLevelPromptSchedule, in the colours of the live timeline under that node
(web/framelevel_timeline.js), each labelled with its number and the first words of its prompt in
large text. The segments are the pack's own parse of the story (nodes/core/story/timeline.py: the
numbers sampled). ComfyUI's template browser shows `NAME.jpg` beside `NAME.json`.

Needs Pillow (the pack's own requirement); the pack is imported as `comfyui_framelevel` from this
checkout.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "comfyui_framelevel"
THUMBNAIL_WIDTH = 512


def pack():
    """The pack as the package `comfyui_framelevel`, loaded from this checkout (never from the root on
    sys.path: ComfyUI owns a top-level `nodes`)."""
    module = sys.modules.get(PACKAGE)
    if module is None or Path(module.__file__).resolve().parent != ROOT:
        spec = importlib.util.spec_from_file_location(PACKAGE, ROOT / "__init__.py",
                                                      submodule_search_locations=[str(ROOT)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACKAGE] = module
        spec.loader.exec_module(module)
    return module


def pack_module(name: str):
    """A module of the pack, e.g. pack_module("nodes.core.windows")."""
    pack()
    return importlib.import_module(f"{PACKAGE}.{name}")


def _first(api: dict, *classes: str) -> dict | None:
    return next((node["inputs"] for _, node in sorted(api.items(), key=lambda i: int(i[0]))
                 if node["class_type"] in classes), None)


THUMBNAIL_HEIGHT = 512
TITLE_FONT, LABEL_FONT, AXIS_FONT = 34, 24, 20      # px: readable when the card shows the picture at 200 px
MARGIN = 14
LABEL_WORDS = 3
FILLER = {"a", "an", "the", "same", "of", "over", "in", "on", "at", "and", "with", "her", "his", "its", "she", "he"}
BACKGROUND, TEXT, AXIS = (24, 26, 30), (245, 245, 245), (150, 150, 150)


def story_segments(api: dict) -> list[dict]:
    """The segments of the workflow's story (number, seconds, prompt) as the live timeline shows them."""
    story = _first(api, "FrameLevelPromptSchedule")
    if story is None:
        raise ValueError("the workflow has no FrameLevelPromptSchedule to draw the story of")
    request = {name: value for name, value in story.items() if not isinstance(value, list)}
    answer = pack_module("nodes.core.story.timeline").timeline(request)
    if not answer["ok"]:
        raise ValueError(f"the workflow's story does not parse: {answer['error']}")
    return answer["segments"]


def segment_colour(number: int) -> tuple[int, int, int]:
    """The live timeline's colour of prompt `number`: hsl(number * 67, 55 %, 38 %)."""
    import colorsys

    red, green, blue = colorsys.hls_to_rgb((number * 67 % 360) / 360, 0.38, 0.55)
    return round(red * 255), round(green * 255), round(blue * 255)


def short_label(segment: dict) -> str:
    """'3 old woman green': the segment's number and the first words of its prompt that say something."""
    words = [w.strip(",.;:") for w in segment["prompt"].split()]
    words = [w for w in words if w and w.lower() not in FILLER][:LABEL_WORDS]
    return f"{segment['number']} " + " ".join(words).rstrip(",.;")


def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size)


def _draw_band(draw, segment: dict, row_top: float, row_height: float, x_of) -> None:
    """One segment: its band over its seconds, its label inside the band or beside it where it fits."""
    x0, x1 = x_of(segment["seconds"][0]), x_of(segment["seconds"][1])
    draw.rectangle((x0, row_top, max(x1 - 1, x0 + 2), row_top + row_height - 4), fill=segment_colour(segment["number"]))
    font = _font(LABEL_FONT)
    label = short_label(segment)
    while font.getlength(label) > THUMBNAIL_WIDTH - 2 * MARGIN - (x1 - x0) and " " in label:
        label = label.rsplit(" ", 1)[0]
    width = font.getlength(label)
    if x1 + 6 + width <= THUMBNAIL_WIDTH - MARGIN:
        x = x1 + 6
    elif x0 - 6 - width >= MARGIN:
        x = x0 - 6 - width
    else:
        x = x0 + 4
    draw.text((x, row_top + (row_height - 4) / 2), label, font=font, fill=TEXT, anchor="lm")


def timeline_picture(api: dict, title: str):
    """The story's timeline as a PIL image: the title, one band per segment, a seconds axis."""
    from PIL import Image, ImageDraw

    segments = story_segments(api)
    image = Image.new("RGB", (THUMBNAIL_WIDTH, THUMBNAIL_HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    title_size = TITLE_FONT
    while _font(title_size).getlength(title) > THUMBNAIL_WIDTH - 2 * MARGIN:
        title_size -= 1
    draw.text((MARGIN, MARGIN), title, font=_font(title_size), fill=TEXT)
    end = segments[-1]["seconds"][1]
    x_of = lambda seconds: MARGIN + (THUMBNAIL_WIDTH - 2 * MARGIN) * seconds / end   # noqa: E731
    top, bottom = MARGIN + TITLE_FONT + 22, THUMBNAIL_HEIGHT - MARGIN - AXIS_FONT - 8
    row_height = (bottom - top) / max(len(segments), 4)
    for row, segment in enumerate(segments):
        _draw_band(draw, segment, top + row * row_height, row_height, x_of)
    draw.line((MARGIN, bottom + 2, THUMBNAIL_WIDTH - MARGIN, bottom + 2), fill=AXIS, width=2)
    axis = _font(AXIS_FONT)
    draw.text((MARGIN, bottom + 6), "0 s", font=axis, fill=AXIS, anchor="la")
    draw.text((THUMBNAIL_WIDTH - MARGIN, bottom + 6), f"{end:.0f} s", font=axis, fill=AXIS, anchor="ra")
    return image


def thumbnail(api: dict, title: str):
    return timeline_picture(api, title)


def write_thumbnail(api: dict, path: Path, title: str) -> Path:
    with pack_module("nodes.core.files").atomic_path(path) as temp:   # the pack's one way to write a file
        thumbnail(api, title).save(temp, format="JPEG", quality=90)
    return path
