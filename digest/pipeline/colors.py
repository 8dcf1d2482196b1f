"""Colours as the email's checks and its dark mode read them: parsing, WCAG 2 contrast, and the
lighter tint of a rubric's colour that reads on a dark background."""
from __future__ import annotations

import colorsys
import re

RGB = tuple[float, float, float]  # each from 0 to 1
_NAMED = {"white": "#ffffff", "black": "#000000", "red": "#ff0000", "gray": "#808080", "grey": "#808080"}


def parse_color(value: str) -> RGB | None:
    value = _NAMED.get(value.strip().lower(), value.strip().lower())
    match = re.fullmatch(r"#([0-9a-f]{3}|[0-9a-f]{6})", value.split()[0] if value else "")
    if match:
        digits = match[1] if len(match[1]) == 6 else "".join(c * 2 for c in match[1])
        red, green, blue = (int(digits[i:i + 2], 16) / 255 for i in (0, 2, 4))
        return red, green, blue
    match = re.fullmatch(r"rgba?\((\d+),\s*(\d+),\s*(\d+)(?:,\s*([\d.]+))?\)", value)
    if match and (match[4] is None or float(match[4]) > 0.5):
        red, green, blue = (int(match[i]) / 255 for i in (1, 2, 3))
        return red, green, blue
    return None


def luminance(rgb: RGB) -> float:
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: RGB, background: RGB) -> float:
    """WCAG 2 contrast ratio, 1 to 21."""
    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def hex_color(rgb: RGB) -> str:
    return "#" + "".join(f"{round(c * 255):02x}" for c in rgb)


def tint(color: str, background: str, ratio: float = 4.5) -> str:
    """The colour made lighter (its lightness raised, hue and saturation kept) until it reaches
    `ratio` against `background`: a dark red rubric stays red on a dark card, not white."""
    rgb, behind = parse_color(color), parse_color(background)
    if rgb is None or behind is None:
        return "#f1f3f6"
    hue, light, saturation = colorsys.rgb_to_hls(*rgb)
    for step in range(0, 41):
        lighter = colorsys.hls_to_rgb(hue, light + (1 - light) * step / 40, saturation)
        if contrast(lighter, behind) >= ratio + 0.3:  # a margin over the line, for rounding to #rrggbb
            return hex_color(lighter)
    return "#ffffff"
