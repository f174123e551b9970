"""A picture of each dashboard's layout, drawn from its JSON (no Grafana needed).

Every panel is a box at its ``gridPos`` (Grafana's 24-column grid) with its title, type and unit; rows
are bars. The SVG is plain text, so it is committed next to the JSON and checked for drift with it.
"""

from __future__ import annotations

from html import escape

COL = 44  # px per grid column (24 columns)
ROW = 26  # px per grid row
PAD = 4
TYPE_FILL = {"timeseries": "#e8f1fb", "stat": "#eaf7ea", "table": "#fdf3e4"}


def dashboard_svg(d: dict) -> str:
    panels = [p for p in d["panels"]]
    height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels) * ROW + 40
    width = 24 * COL
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{PAD}" y="24" font-size="18" font-weight="bold">{escape(d["title"])}</text>',
        f'<text x="{width - PAD}" y="24" font-size="12" text-anchor="end" fill="#555">uid {escape(d["uid"])} · '
        f'variables: {escape(", ".join(v["name"] for v in d["templating"]["list"]))}</text>',
    ]
    for p in panels:
        g = p["gridPos"]
        x, y = g["x"] * COL, 36 + g["y"] * ROW
        w, h = g["w"] * COL, g["h"] * ROW
        if p["type"] == "row":
            out.append(f'<rect x="{x}" y="{y + 2}" width="{w}" height="{h - 4}" fill="#39414d"/>')
            out.append(f'<text x="{x + 8}" y="{y + h - 8}" font-size="13" fill="#ffffff" font-weight="bold">'
                       f'{escape(p["title"])}</text>')
            continue
        fill = TYPE_FILL.get(p["type"], "#f2f2f2")
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        out.append(f'<rect x="{x + PAD / 2}" y="{y + PAD / 2}" width="{w - PAD}" height="{h - PAD}" rx="3" '
                   f'fill="{fill}" stroke="#8a96a3"/>')
        out.append(f'<text x="{x + 8}" y="{y + 18}" font-size="12" font-weight="bold">'
                   f'{escape(_fit(p["title"], g["w"]))}</text>')
        out.append(f'<text x="{x + 8}" y="{y + 34}" font-size="10" fill="#555">'
                   f'{escape(p["type"])}{" · " + escape(unit) if unit else ""} · '
                   f'{len(p.get("targets", []))} quer{"y" if len(p.get("targets", [])) == 1 else "ies"}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _fit(text: str, cols: int) -> str:
    room = max(4, int(cols * COL / 7.2))
    return text if len(text) <= room else text[: room - 1] + "…"
