"""Places on the demo's map, written ``x,y`` in URLs, JSON and SQL rows."""

from typing import NamedTuple


class Location(NamedTuple):
    x: int
    y: int

    def __str__(self):
        return f"{self.x},{self.y}"


def parse_location(text):
    """Read ``x,y`` (two whole numbers) into a Location, or raise ValueError saying why not."""
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        return Location(int(parts[0]), int(parts[1]))
    except ValueError:
        message = f"expected x,y with two whole numbers, e.g. 115,277; got {text!r}"
        raise ValueError(message) from None
