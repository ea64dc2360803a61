"""Writes divisions.geojson: SYNTHETIC boundaries for the fictional city's counties and towns (the
console's map). Not survey data: a jittered grid, each shared edge wiggled once so neighbours meet.
Run `python shared/reference/synthetic_shapes.py` after changing divisions.toml's counties or towns."""

from __future__ import annotations

import json
import random
import tomllib
from pathlib import Path

HERE = Path(__file__).parent
WEST, EAST, SOUTH, NORTH = 120.00, 120.64, 29.80, 30.16  # a made-up spot; no real place is drawn
ROWS = 2  # towns per county: ROWS x columns, columns = ceil(towns / ROWS)


def _grid(columns: int, rng: random.Random) -> list[list[tuple[float, float]]]:
    """Corner points, interior ones jittered."""
    points = []
    for r in range(ROWS + 1):
        row = []
        for c in range(columns + 1):
            x = WEST + (EAST - WEST) * c / columns
            y = SOUTH + (NORTH - SOUTH) * r / ROWS
            if 0 < c < columns:
                x += rng.uniform(-0.02, 0.02)
            if 0 < r < ROWS:
                y += rng.uniform(-0.03, 0.03)
            row.append((round(x, 5), round(y, 5)))
        points.append(row)
    return points


def _edge(a, b, cache, rng):
    """The wiggled line from a to b; the same line (reversed) for the neighbour on the other side."""
    key = (min(a, b), max(a, b))
    if key not in cache:
        p, q = key
        line = [p]
        for i in range(1, 6):
            t = i / 6
            line.append((round(p[0] + (q[0] - p[0]) * t + rng.uniform(-0.006, 0.006), 5),
                         round(p[1] + (q[1] - p[1]) * t + rng.uniform(-0.006, 0.006), 5)))
        line.append(q)
        cache[key] = line
    line = cache[key]
    return line if line[0] == a else line[::-1]


def _ring(corners, cache, rng):
    """A closed ring through the corners (counter-clockwise), along the shared edges."""
    ring = []
    for a, b in zip(corners, corners[1:] + corners[:1]):
        ring.extend(_edge(a, b, cache, rng)[:-1])
    return [list(p) for p in ring + ring[:1]]


def shapes() -> dict:
    """The FeatureCollection: one polygon per town, and per county the outline of its towns."""
    divisions = tomllib.loads((HERE / "divisions.toml").read_text(encoding="utf-8"))["division"]
    counties = [d for d in divisions if d["level"] == "county"]
    towns = {c["code"]: [d for d in divisions if d["level"] == "town" and d["code"].startswith(c["code"])]
             for c in counties}
    columns_of = {c["code"]: -(-len(towns[c["code"]]) // ROWS) for c in counties}
    rng = random.Random(339900)
    grid = _grid(sum(columns_of.values()), rng)
    cache: dict = {}
    features, first = [], 0
    for county in counties:
        cols = columns_of[county["code"]]
        for i, town in enumerate(towns[county["code"]]):
            r, c = i % ROWS, first + i // ROWS
            corners = [grid[r][c], grid[r][c + 1], grid[r + 1][c + 1], grid[r + 1][c]]
            features.append(_feature(town, _ring(corners, cache, rng)))
        outline = ([grid[0][c] for c in range(first, first + cols + 1)]
                   + [grid[r][first + cols] for r in range(1, ROWS + 1)]
                   + [grid[ROWS][c] for c in range(first + cols - 1, first - 1, -1)]
                   + [grid[r][first] for r in range(ROWS - 1, 0, -1)])
        features.append(_feature(county, _ring(outline, cache, rng)))
        first += cols
    return {"type": "FeatureCollection", "name": "江澄市 (synthetic)", "features": features}


def _feature(division: dict, ring: list) -> dict:
    return {"type": "Feature", "properties": {"code": division["code"], "name": division["name"],
                                              "level": division["level"], "synthetic": True},
            "geometry": {"type": "Polygon", "coordinates": [ring]}}


if __name__ == "__main__":
    (HERE / "divisions.geojson").write_text(json.dumps(shapes(), ensure_ascii=False, separators=(",", ":")) + "\n",
                                            encoding="utf-8")
