#!/usr/bin/env python3
"""Draws bench/scale.svg from the JSON lines of `bench/run cluster` and `bench/run memory`.

Usage: bench/plot_scale.py bench/scale.jsonl > bench/scale.svg

Two panels: the probe's overhead in the cluster experiment (p50 and p99, log scale,
with the 100 ms target and the Mesos paper's 1 s), and the master's anonymous memory
with the agents registered and with the tasks running, against the memory targets
(4 KB per agent, 1 KB per task). Standard library only.
"""

import json
import math
import sys

WIDTH, HEIGHT = 960, 450
PANEL_W, PANEL_H = 360, 270
LEFT_X, RIGHT_X, TOP_Y = 80, 560, 50
COLORS = {"p50": "#1f77b4", "p99": "#d62728", "agents": "#2ca02c", "tasks": "#9467bd"}


def log_scale(value, low, high, size):
    return size * (math.log10(value) - math.log10(low)) / (math.log10(high) - math.log10(low))


def text(x, y, label, anchor="middle", size=12, extra=""):
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
        f'font-family="sans-serif"{extra}>{label}</text>'
    )


def axes(x0, title, x_label, y_label, x_ticks, y_ticks):
    """The frame, the ticks ((position, label) pairs, positions inside the panel) and labels."""
    out = [
        f'<rect x="{x0}" y="{TOP_Y}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#444"/>',
        text(x0 + PANEL_W / 2, TOP_Y - 14, title, size=14, extra=' font-weight="bold"'),
        text(x0 + PANEL_W / 2, TOP_Y + PANEL_H + 38, x_label),
        text(
            x0 - 58,
            TOP_Y + PANEL_H / 2,
            y_label,
            extra=f' transform="rotate(-90 {x0 - 58} {TOP_Y + PANEL_H / 2})"',
        ),
    ]
    for pos, label in x_ticks:
        x = x0 + pos
        out.append(f'<line x1="{x:.1f}" y1="{TOP_Y + PANEL_H}" x2="{x:.1f}" y2="{TOP_Y + PANEL_H + 5}" stroke="#444"/>')
        out.append(text(x, TOP_Y + PANEL_H + 18, label, size=11))
    for pos, label in y_ticks:
        y = TOP_Y + PANEL_H - pos
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + PANEL_W}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(text(x0 - 6, y + 4, label, anchor="end", size=11))
    return out


def series(x0, points, color, dashed=False, label=None, label_row=0, legend_x=10, legend_y=16):
    """A line through (x, y) points inside the panel, with dots, and its legend entry
    (`legend_x`, `legend_y`: where the legend's first row starts in the panel)."""
    path = " ".join(f"{x0 + x:.1f},{TOP_Y + PANEL_H - y:.1f}" for x, y in points)
    dash = ' stroke-dasharray="6 4"' if dashed else ""
    out = [f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>']
    if not dashed:
        out += [
            f'<circle cx="{x0 + x:.1f}" cy="{TOP_Y + PANEL_H - y:.1f}" r="3" fill="{color}"/>'
            for x, y in points
        ]
    if label:
        lx, ly = x0 + legend_x, TOP_Y + legend_y + 16 * label_row
        out.append(f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 24}" y2="{ly - 4}" stroke="{color}" stroke-width="2"{dash}/>')
        out.append(text(lx + 30, ly, label, anchor="start", size=11))
    return out


def agents_label(n):
    return f"{n // 1000}k"


def overhead_panel(cluster):
    cluster = sorted(cluster, key=lambda r: r["agents"])
    low_a, high_a = 800, 60000
    low_ms, high_ms = 5, 300_000
    xs = lambda a: log_scale(a, low_a, high_a, PANEL_W)
    ys = lambda ms: log_scale(min(max(ms, low_ms), high_ms), low_ms, high_ms, PANEL_H)
    x_ticks = [(xs(a), agents_label(a)) for a in (1000, 5000, 10000, 20000, 50000)]
    y_ticks = [(ys(v), label) for v, label in
               ((10, "10 ms"), (100, "100 ms"), (1000, "1 s"), (10_000, "10 s"), (100_000, "100 s"))]
    out = axes(LEFT_X, "Probe task overhead, 200 frameworks", "simulated agents (log)",
               "overhead beyond the 10 s task (log)", x_ticks, y_ticks)
    legend = {"legend_x": 20, "legend_y": PANEL_H + 62}
    legend2 = {"legend_x": 140, "legend_y": PANEL_H + 62}
    out += series(LEFT_X, [(xs(r["agents"]), ys(r["overhead_p50_ms"])) for r in cluster],
                  COLORS["p50"], label="p50", label_row=0, **legend)
    out += series(LEFT_X, [(xs(r["agents"]), ys(r["overhead_p99_ms"])) for r in cluster],
                  COLORS["p99"], label="p99", label_row=1, **legend)
    out += series(LEFT_X, [(0, ys(100)), (PANEL_W, ys(100))], "#555", dashed=True,
                  label="target: 100 ms p99 at 50k", label_row=0, **legend2)
    out += series(LEFT_X, [(0, ys(1000)), (PANEL_W, ys(1000))], "#aaa", dashed=True,
                  label="Mesos paper: under 1 s", label_row=1, **legend2)
    return out


def memory_panel(memory):
    memory = sorted(memory, key=lambda r: r["agents"])
    tasks_per_agent = memory[-1]["tasks"] // memory[-1]["agents"]
    high_a = max(r["agents"] for r in memory)
    high_mb = max(r["master_anon_mb"] for r in memory)
    budget = lambda a: a * (4096 + 1024 * tasks_per_agent) / 1e6
    high_mb = 100 * math.ceil(max(high_mb, budget(high_a)) / 100)
    xs = lambda a: PANEL_W * a / high_a
    ys = lambda mb: PANEL_H * mb / high_mb
    x_ticks = [(xs(r["agents"]), agents_label(r["agents"])) for r in memory]
    step = max(100, 100 * math.ceil(high_mb / 600))
    y_ticks = [(ys(v), f"{v}") for v in range(0, int(high_mb) + 1, step)]
    out = axes(RIGHT_X, "Master memory", "simulated agents",
               "anonymous memory, MB", x_ticks, y_ticks)
    out += series(RIGHT_X, [(0, 0)] + [(xs(r["agents"]), ys(r["agents_anon_mb"])) for r in memory],
                  COLORS["agents"], label="agents registered", label_row=0)
    out += series(RIGHT_X, [(0, 0)] + [(xs(r["agents"]), ys(r["master_anon_mb"])) for r in memory],
                  COLORS["tasks"], label=f"and {tasks_per_agent} tasks per agent running", label_row=1)
    out += series(RIGHT_X, [(0, 0), (PANEL_W, ys(budget(high_a)))], "#555", dashed=True,
                  label=f"target: 4 KB/agent + 1 KB/task", label_row=2)
    return out


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    cluster = [r for r in rows if r.get("bench") == "cluster"]
    memory = [r for r in rows if r.get("bench") == "memory"]
    if not cluster or not memory:
        sys.exit("need both cluster and memory lines")
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}">',
             f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>']
    parts += overhead_panel(cluster) + memory_panel(memory)
    parts.append("</svg>")
    print("\n".join(parts))


if __name__ == "__main__":
    main()
