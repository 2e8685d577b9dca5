"""A booking's attendance drawn as a standalone SVG for whoever settles a dispute; pure, no I/O.

The input is the summary `attendance()` returns (the body of the JSON route, so the picture
and the JSON cannot disagree) and the scheduled window of the booking's request. The SVG is
built with the standard library's ElementTree, which escapes every text and attribute, so a
participant named `<script>` is drawn as those characters; characters XML 1.0 cannot hold
(control characters) are dropped first. The drawing has no script and refers to nothing
outside itself; fills that are patterns refer to `<defs>` inside the same document.

Every drawn fact carries its time in a `data-*` attribute (`data-joined-at`, `data-at`, ...)
so that tests, and anyone scripting against the picture, can compare it with the JSON.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

WIDTH = 900
LABEL_LEFT = 16
PLOT_LEFT = 236
PLOT_RIGHT = 796
TOTAL_RIGHT = WIDTH - 16
HEADER_HEIGHT = 62
CLICK_LANE_TOP = 70
LANE_HEIGHT = 24
BAR_HEIGHT = 14
LANES_TOP = CLICK_LANE_TOP + LANE_HEIGHT + 6
# A label longer than this many characters is cut with an ellipsis (its <title> keeps it whole).
LABEL_CHARS = 30
HOST_TAG = " (host)"
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
INK = "#1b1f24"
MUTED = "#5b6470"
DELIVERED = "#1f5fa8"
RECOVERED = "#c2570c"
SCHEDULED_FILL = "#e9eef5"

WEBHOOK = "webhook"
ZOOM_API = "zoom_api"
BOTH = "webhook+zoom_api"
SOURCE_WORDS = {
    WEBHOOK: "delivered by Zoom's webhook",
    ZOOM_API: "recovered from Zoom's report",
    BOTH: "partly delivered, partly recovered from Zoom's report",
}
EVIDENCE_WORDS = {
    "webhooks": "delivered webhooks",
    "zoom_api": "recovered from Zoom",
    "webhooks+zoom_api": "webhooks + recovered from Zoom",
    "none": "no Zoom event",
}
SOURCE_FILLS = {WEBHOOK: DELIVERED, ZOOM_API: "url(#recovered)", BOTH: "url(#mixed)"}
# The tick spacings the axis may use, in seconds: a round figure a reader can add up.
TICK_STEPS: tuple[int, ...] = (10, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600)
TICK_STEPS += (7200, 10800, 21600, 43200, 86400, 2 * 86400, 7 * 86400, 14 * 86400, 28 * 86400)
MAX_TICKS = 9
# Characters XML 1.0 cannot carry, escaped or not.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Invisible direction overrides: a name must not reverse the text drawn after it.
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True, slots=True)
class Schedule:
    """When the booking's meeting was planned: its request's starts_at and end."""

    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class Axis:
    """The time span drawn, mapped linearly onto the plot's x range."""

    start: datetime
    end: datetime

    def x(self, moment: datetime) -> float:
        span = (self.end - self.start).total_seconds()
        share = (moment - self.start).total_seconds() / span
        return round(PLOT_LEFT + share * (PLOT_RIGHT - PLOT_LEFT), 2)

    def ticks(self) -> list[datetime]:
        span = (self.end - self.start).total_seconds()
        fallback = -(-span // (MAX_TICKS * 86400)) * 86400  # whole days, for very long spans
        step = next((s for s in TICK_STEPS if span / s <= MAX_TICKS), fallback)
        first = datetime.fromtimestamp(-(-self.start.timestamp() // step) * step, UTC)
        count = int((self.end - first).total_seconds() // step) + 1
        return [first + timedelta(seconds=step * i) for i in range(max(0, count))]


def clean(text: str) -> str:
    """Drop what XML 1.0 cannot hold, and bidi controls; everything else ElementTree escapes."""
    return BIDI_CONTROLS.sub("", NOT_XML.sub("", text))


def cut(text: str, limit: int) -> str:
    """Shorten text to limit characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M:%S")


def stamp(moment: datetime) -> str:
    """The moment as the JSON route writes it (ISO 8601, UTC, Z)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def duration(seconds: float) -> str:
    """Say a length the way a person would: 45 s, 7 min 50 s, 1 h 02 min."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def lane_label(person: Mapping[str, Any]) -> str:
    """The lane's name: the person's name, else the email, else unknown."""
    return clean(person.get("name") or person.get("email") or "unknown")


def interval_source(interval: Mapping[str, Any]) -> str:
    """Where an interval's evidence came from; intervals without `source` were delivered."""
    source = interval.get("source")
    return source if source in SOURCE_WORDS else WEBHOOK


def axis_for(summary: Mapping[str, Any], schedule: Schedule | None) -> Axis | None:
    """Span the schedule, the meeting, every interval and click, with a little room each side."""
    moments: list[datetime] = []
    if schedule is not None:
        moments += [schedule.starts_at, schedule.ends_at]
    for key in ("meeting_started_at", "meeting_ended_at", "first_start_click_at"):
        if summary.get(key) is not None:
            moments.append(summary[key])
    if summary.get("first_join_click_at") is not None:
        moments.append(summary["first_join_click_at"])
    for person in summary["participants"]:
        for interval in person["intervals"]:
            moments += [m for m in (interval["joined_at"], interval["left_at"]) if m is not None]
    if not moments:
        return None
    start, end = min(moments), max(moments)
    span = max((end - start).total_seconds(), 600.0)
    room = timedelta(seconds=span * 0.04)
    if (end - start).total_seconds() < 600:
        middle = start + (end - start) / 2
        start, end = middle - timedelta(seconds=300), middle + timedelta(seconds=300)
    return Axis(start - room, end + room)


def element(parent: ET.Element, tag: str, text: str | None = None, **attrs: Any) -> ET.Element:
    """Add a child; attribute names use _ for -, values become strings."""
    child = ET.SubElement(
        parent, tag, {k.rstrip("_").replace("_", "-"): str(v) for k, v in attrs.items()}
    )
    if text is not None:
        child.text = clean(text)
    return child


def titled(parent: ET.Element, tag: str, title: str, **attrs: Any) -> ET.Element:
    """Add a child whose <title> (the browser's tooltip, a screen reader's name) is title."""
    child = element(parent, tag, **attrs)
    element(child, "title", title)
    return child


def draw_defs(svg: ET.Element) -> None:
    """Hatching for recovered evidence, so the sources differ without colour too."""
    defs = element(svg, "defs")
    hatch = element(
        defs,
        "pattern",
        id="recovered",
        width=6,
        height=6,
        patternUnits="userSpaceOnUse",
        patternTransform="rotate(45)",
    )
    element(hatch, "rect", width=6, height=6, fill="#fff")
    element(hatch, "rect", width=3, height=6, fill=RECOVERED)
    mixed = element(
        defs,
        "pattern",
        id="mixed",
        width=6,
        height=6,
        patternUnits="userSpaceOnUse",
        patternTransform="rotate(45)",
    )
    element(mixed, "rect", width=6, height=6, fill=DELIVERED)
    element(mixed, "rect", width=2, height=6, fill=RECOVERED)


def draw_header(svg: ET.Element, summary: Mapping[str, Any], schedule: Schedule | None) -> None:
    element(
        svg,
        "text",
        f"Attendance of booking {summary['booking_id']}",
        x=LABEL_LEFT,
        y=24,
        font_size=15,
        font_weight="bold",
    )
    parts = []
    if schedule is not None:
        parts.append(f"scheduled {clock(schedule.starts_at)}\u2013{clock(schedule.ends_at)}")
    else:
        parts.append("no schedule (booking without a request)")
    started, ended = summary.get("meeting_started_at"), summary.get("meeting_ended_at")
    if started is not None and ended is not None:
        parts.append(f"meeting ran {clock(started)}\u2013{clock(ended)}")
    elif started is not None:
        parts.append(f"meeting started {clock(started)}, no end recorded")
    elif ended is not None:
        parts.append(f"meeting ended {clock(ended)}, no start recorded")
    else:
        parts.append("no meeting start or end recorded")
    if summary.get("evidence"):
        words = EVIDENCE_WORDS.get(summary["evidence"], summary["evidence"])
        if summary.get("reconciled_at") is not None:
            words += f", reconciled {clock(summary['reconciled_at'])}"
        parts.append(f"evidence: {words}")
    element(svg, "text", "UTC \u00b7 " + " \u00b7 ".join(parts), x=LABEL_LEFT, y=44, fill=MUTED)


def draw_schedule(svg: ET.Element, axis: Axis, schedule: Schedule | None, bottom: int) -> None:
    if schedule is None:
        return
    left, right = axis.x(schedule.starts_at), axis.x(schedule.ends_at)
    group = titled(
        svg,
        "g",
        f"Scheduled: {clock(schedule.starts_at)} to {clock(schedule.ends_at)} UTC",
        class_="scheduled",
        data_starts_at=stamp(schedule.starts_at),
        data_ends_at=stamp(schedule.ends_at),
    )
    top = CLICK_LANE_TOP - 4
    element(
        group,
        "rect",
        x=left,
        y=top,
        width=max(right - left, 1),
        height=bottom - top,
        fill=SCHEDULED_FILL,
        fill_opacity="0.7",
    )
    for edge in (left, right):
        element(
            group, "line", x1=edge, x2=edge, y1=top, y2=bottom, stroke=MUTED, stroke_dasharray="2 3"
        )
    # At the top of the band, in the clicks lane, where no bar can hide it.
    element(
        group,
        "text",
        "scheduled",
        x=right - 3,
        y=top + 12,
        font_size=10,
        fill=MUTED,
        text_anchor="end",
    )


def draw_lane_backgrounds(svg: ET.Element, count: int) -> None:
    for index in range(count):
        if index % 2 == 0:
            element(
                svg,
                "rect",
                x=LABEL_LEFT - 6,
                y=LANES_TOP + index * LANE_HEIGHT,
                width=TOTAL_RIGHT - LABEL_LEFT + 12,
                height=LANE_HEIGHT,
                fill="#f4f5f7",
            )


def draw_meeting_marks(
    svg: ET.Element, axis: Axis, summary: Mapping[str, Any], bottom: int
) -> None:
    """A vertical line for the meeting's start and end, labelled above the lanes."""
    marks = (
        ("meeting_started_at", "meeting-start", "Meeting started", "start \u25b8", "end"),
        ("meeting_ended_at", "meeting-end", "Meeting ended", "\u25c2 end", "start"),
    )
    for key, name, words, label, anchor in marks:
        moment = summary.get(key)
        if moment is None:
            continue
        x = axis.x(moment)
        group = titled(
            svg,
            "g",
            f"{words} at {clock(moment)} UTC",
            class_=f"mark {name}",
            data_at=stamp(moment),
        )
        element(group, "line", x1=x, x2=x, y1=CLICK_LANE_TOP - 8, y2=bottom, stroke=INK)
        shift = -3 if anchor == "end" else 3
        element(
            group,
            "text",
            label,
            x=x + shift,
            y=CLICK_LANE_TOP - 10,
            font_size=11,
            text_anchor=anchor,
        )


def draw_clicks(svg: ET.Element, axis: Axis, summary: Mapping[str, Any]) -> None:
    """The first Start and Join clicks: a triangle and a circle on their own lane."""
    middle = CLICK_LANE_TOP + LANE_HEIGHT / 2
    element(svg, "text", "Clicks in TeachTape", x=LABEL_LEFT, y=middle + 4, fill=MUTED)
    start, join = summary.get("first_start_click_at"), summary.get("first_join_click_at")
    if start is not None:
        x = axis.x(start)
        group = titled(
            svg,
            "g",
            f"Coach clicked Start Meeting at {clock(start)} UTC",
            class_="mark start-click",
            data_at=stamp(start),
        )
        points = f"{x},{middle - 7} {x - 7},{middle + 6} {x + 7},{middle + 6}"
        element(group, "polygon", points=points, fill=INK)
        element(group, "text", "Start", x=x - 9, y=middle + 4, font_size=10, text_anchor="end")
    if join is not None:
        x = axis.x(join)
        group = titled(
            svg,
            "g",
            f"Athlete clicked Join Meeting at {clock(join)} UTC",
            class_="mark join-click",
            data_at=stamp(join),
        )
        element(group, "circle", cx=x, cy=middle, r=6, fill="#fff", stroke=INK, stroke_width=2)
        element(group, "text", "Join", x=x + 9, y=middle + 4, font_size=10)


def draw_lane(svg: ET.Element, axis: Axis, person: Mapping[str, Any], index: int) -> None:
    """One participant: the label, a bar per interval, the total at the right."""
    top = LANES_TOP + index * LANE_HEIGHT
    middle = top + LANE_HEIGHT / 2
    label = lane_label(person)
    is_host = bool(person.get("is_host"))
    full = label + (HOST_TAG if is_host else "")
    if person.get("email") and person.get("name"):
        full += f" <{clean(person['email'])}>"
    lane = element(
        svg, "g", class_="lane", data_name=label, data_host=str(is_host).lower(), data_index=index
    )
    element(lane, "title", full)
    text = element(lane, "text", x=LABEL_LEFT, y=middle + 4)
    text.text = cut(label, LABEL_CHARS - (len(HOST_TAG) if is_host else 0))
    if is_host:
        element(text, "tspan", HOST_TAG, font_weight="bold")
    for interval in person["intervals"]:
        draw_bar(lane, axis, label, interval, middle)
    seconds = int(person.get("seconds_present") or 0)
    element(
        lane,
        "text",
        duration(seconds),
        x=TOTAL_RIGHT,
        y=middle + 4,
        text_anchor="end",
        class_="total",
        data_seconds=seconds,
    )


def draw_bar(
    lane: ET.Element, axis: Axis, label: str, interval: Mapping[str, Any], middle: float
) -> None:
    joined, left = interval["joined_at"], interval["left_at"]
    source = interval_source(interval)
    x = axis.x(joined)
    end = axis.x(left) if left is not None else PLOT_RIGHT
    if left is not None:
        words = (
            f"{label}: joined {clock(joined)}, left {clock(left)} UTC "
            f"({duration((left - joined).total_seconds())}); {SOURCE_WORDS[source]}"
        )
    else:
        words = (
            f"{label}: joined {clock(joined)} UTC, no leave recorded while the meeting runs; "
            f"{SOURCE_WORDS[source]}"
        )
    attrs: dict[str, Any] = {
        "class_": f"bar {source.replace('+', '-')}" + ("" if left is not None else " open"),
        "x": x,
        "y": middle - BAR_HEIGHT / 2,
        # A visit of a few seconds still shows as a sliver.
        "width": max(round(end - x, 2), 2),
        "height": BAR_HEIGHT,
        "fill": SOURCE_FILLS[source],
        "stroke": RECOVERED if source == ZOOM_API else DELIVERED,
        "data_joined_at": stamp(joined),
        "data_left_at": stamp(left) if left is not None else "",
        "data_source": source,
    }
    if left is None:
        attrs["stroke_dasharray"] = "4 2"
        attrs["fill_opacity"] = "0.55"
    titled(lane, "rect", words, **attrs)


def draw_axis(svg: ET.Element, axis: Axis, bottom: int) -> int:
    """Gridlines and UTC tick labels under the lanes; return where the axis text ends."""
    element(svg, "line", x1=PLOT_LEFT, x2=PLOT_RIGHT, y1=bottom, y2=bottom, stroke=INK)
    # Over several days every tick on a new day says its date; within one day the caption does.
    previous_day = axis.start.date() if axis.start.date() == axis.end.date() else None
    for tick in axis.ticks():
        x = axis.x(tick)
        group = element(svg, "g", class_="tick", data_at=stamp(tick))
        element(
            group,
            "line",
            x1=x,
            x2=x,
            y1=CLICK_LANE_TOP,
            y2=bottom + 4,
            stroke="#c9ced6",
            stroke_width=0.6,
        )
        label = tick.strftime("%H:%M:%S" if tick.second else "%H:%M")
        if tick.date() != previous_day:
            label = tick.strftime("%m-%d ") + label
        previous_day = tick.date()
        element(group, "text", label, x=x, y=bottom + 16, font_size=11, text_anchor="middle")
    days = sorted({axis.start.date(), axis.end.date()})
    caption = "time, UTC, " + " to ".join(day.isoformat() for day in days)
    element(svg, "text", caption, x=PLOT_LEFT, y=bottom + 32, font_size=11, fill=MUTED)
    element(
        svg,
        "text",
        "present",
        x=TOTAL_RIGHT,
        y=bottom + 16,
        font_size=11,
        fill=MUTED,
        text_anchor="end",
    )
    return bottom + 32


LEGEND_COLUMNS = (LABEL_LEFT, 192, 368, 544, 720)


def draw_legend(svg: ET.Element, top: int) -> int:
    """Explain every fill and mark, in two rows of fixed columns; return the legend's bottom."""
    legend = element(svg, "g", class_="legend")
    swatch: dict[str, Any] = {"width": 22, "height": 10}
    row = top + 12
    fills: Sequence[tuple[str, dict[str, Any]]] = (
        ("delivered by webhook", {"fill": DELIVERED}),
        ("recovered from Zoom", {"fill": "url(#recovered)", "stroke": RECOVERED}),
        ("delivered + recovered", {"fill": "url(#mixed)", "stroke": DELIVERED}),
        (
            "no leave yet",
            {"fill": DELIVERED, "fill_opacity": "0.55", "stroke": DELIVERED,
             "stroke_dasharray": "4 2"},
        ),
        ("scheduled", {"fill": SCHEDULED_FILL, "stroke": MUTED, "stroke_dasharray": "2 3"}),
    )  # fmt: skip
    for x, (words, paint) in zip(LEGEND_COLUMNS, fills, strict=True):
        element(legend, "rect", x=x, y=row - 9, **swatch, **paint)
        element(legend, "text", words, x=x + 28, y=row, font_size=11)
    row += 18
    x = LEGEND_COLUMNS[0]
    element(legend, "line", x1=x + 11, x2=x + 11, y1=row - 11, y2=row + 2, stroke=INK)
    element(legend, "text", "meeting start / end", x=x + 28, y=row, font_size=11)
    x = LEGEND_COLUMNS[1]
    points = f"{x + 11},{row - 10} {x + 4},{row + 2} {x + 18},{row + 2}"
    element(legend, "polygon", points=points, fill=INK)
    element(legend, "text", "coach clicked Start", x=x + 28, y=row, font_size=11)
    x = LEGEND_COLUMNS[2]
    element(legend, "circle", cx=x + 11, cy=row - 4, r=5, fill="#fff", stroke=INK, stroke_width=2)
    element(legend, "text", "athlete clicked Join", x=x + 28, y=row, font_size=11)
    x = LEGEND_COLUMNS[3]
    element(legend, "text", "(host)", x=x, y=row, font_size=11, font_weight="bold")
    element(legend, "text", "Zoom's meeting host", x=x + 40, y=row, font_size=11)
    return row + 10


def attendance_svg(summary: Mapping[str, Any], schedule: Schedule | None) -> bytes:
    """Draw an attendance summary (the JSON route's body) as a standalone SVG document."""
    people: Sequence[Mapping[str, Any]] = summary["participants"]
    axis = axis_for(summary, schedule)
    lanes = max(len(people), 1)
    lanes_bottom = LANES_TOP + lanes * LANE_HEIGHT
    height = lanes_bottom + 96
    svg = ET.Element(
        "svg",
        {
            "xmlns": "http://www.w3.org/2000/svg",
            "version": "1.1",
            "width": str(WIDTH),
            "height": str(height),
            "viewBox": f"0 0 {WIDTH} {height}",
            "font-family": FONT,
            "font-size": "12",
            "fill": INK,
            "role": "img",
        },
    )
    element(svg, "title", f"Attendance of booking {summary['booking_id']}")
    draw_defs(svg)
    element(svg, "rect", width=WIDTH, height=height, fill="#fff")
    draw_header(svg, summary, schedule)
    if axis is None:
        element(
            svg,
            "text",
            "Nothing recorded yet: no schedule, no Zoom event and no click for this booking.",
            x=LABEL_LEFT,
            y=LANES_TOP + 16,
            class_="empty",
        )
        bottom = draw_axis_placeholder(svg, lanes_bottom)
    else:
        draw_lane_backgrounds(svg, len(people))
        draw_schedule(svg, axis, schedule, lanes_bottom)
        draw_clicks(svg, axis, summary)
        for index, person in enumerate(people):
            draw_lane(svg, axis, person, index)
        if not people:
            element(
                svg,
                "text",
                "Nobody joined: no participant event is recorded for this meeting.",
                x=PLOT_LEFT + 8,
                y=LANES_TOP + 16,
                class_="empty",
            )
        draw_meeting_marks(svg, axis, summary, lanes_bottom)
        bottom = draw_axis(svg, axis, lanes_bottom)
    draw_legend(svg, bottom + 10)
    ET.indent(svg, space="")
    for text in svg.iter("text"):
        for child in text:
            child.tail = None  # a line break inside a label would be drawn as a space
    document: bytes = ET.tostring(svg, encoding="utf-8", xml_declaration=True)
    return document


def draw_axis_placeholder(svg: ET.Element, bottom: int) -> int:
    element(svg, "line", x1=PLOT_LEFT, x2=PLOT_RIGHT, y1=bottom, y2=bottom, stroke=INK)
    element(svg, "text", "time, UTC", x=PLOT_LEFT, y=bottom + 32, font_size=11, fill=MUTED)
    return bottom + 32
